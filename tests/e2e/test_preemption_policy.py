"""A request with an eviction policy preempted for lack of KV
pages must come back at its policy's footprint and finish, and must not block
the requests behind it; a request that can never fit the pool is refused at
once (413 naming the numbers) instead of waiting forever.

A 12 MiB pool on the default model holds about 470-token prompts at
streamingllm budget 64 for a few requests at a time, so four of them with 120
tokens to generate each force preemptions. Before the fix the preempted
request lost its policy, was re-admitted at the full-cache footprint (more
than the whole pool) and waited forever with the engine thread spinning."""
import concurrent.futures
import json
import os
import pathlib
import sys
import time

import pytest
import requests

from serve_process import ServeProcess, free_port

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import soak_load  # noqa: E402  (gRPC stubs from proto/)

MODEL = "smollm"
TIMEOUT_S = 180  # the four requests take well under a minute on 2 cores when nothing hangs


@pytest.fixture(scope="module")
def server(request, model_path, tmp_path_factory):
    # RESTKV_BIN points at another build's binary (e.g. one without the fix).
    binary = os.environ.get("RESTKV_BIN") or request.getfixturevalue("restkv_bin")
    grpc_port = free_port()
    s = ServeProcess(binary, model_path, tmp_path_factory.mktemp("serve") / "serve.log", args=[
        "--grpc-port", str(grpc_port), "--served-model-name", MODEL, "--threads", "2",
        "--kv-cache-memory", "12MiB"])
    s.grpc_port = grpc_port
    yield s
    assert s.stop() == 0, s.log()


def complete(server, prompt, max_tokens, **extra):
    body = {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "ignore_eos": True, **extra}
    return requests.post(server.url + "/v1/completions", data=json.dumps(body),
                         headers={"Content-Type": "application/json"}, timeout=TIMEOUT_S)


def prompt_of(server, tokens, seed):
    """A prompt of exactly `tokens` tokens (numbers tokenise predictably)."""
    words = " ".join(str((seed * 7919 + i * 31) % 1000) for i in range(tokens))
    ids = requests.post(server.url + "/tokenize", json={"model": MODEL, "prompt": words},
                        timeout=30).json()["tokens"]
    return requests.post(server.url + "/detokenize", json={"model": MODEL, "tokens": ids[:tokens]},
                         timeout=30).json()["prompt"]


def test_preempted_policy_requests_finish_and_do_not_block(server):
    prompts = [prompt_of(server, 470, seed) for seed in range(4)]
    before = server.metrics()
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(complete, server, p, 120, kv_policy="streamingllm", kv_budget=64)
                   for p in prompts]
        time.sleep(2)  # the four are admitted or queued before the short one
        short = pool.submit(complete, server, "Hello", 1)
        results = [f.result() for f in futures] + [short.result()]
    for r in results:
        assert r.status_code == 200, r.text
    for r in results[:4]:
        assert r.json()["usage"]["completion_tokens"] == 120
    after = server.metrics()
    assert after["restkv:num_preemptions_total"] - before["restkv:num_preemptions_total"] >= 1, \
        "the pool was meant to force preemptions"
    assert after["restkv:num_requests_running"] == 0
    assert after["restkv:num_requests_waiting"] == 0
    assert after["restkv:kv_pages_used"] == 0


def test_preemption_does_not_change_greedy_text(server):
    """The preempted requests' text equals each one's text alone (no pressure)."""
    prompts = [prompt_of(server, 470, seed) for seed in range(4)]
    alone = [complete(server, p, 120, kv_policy="streamingllm", kv_budget=64).json()
             for p in prompts]
    before = server.metrics()["restkv:num_preemptions_total"]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(
            lambda p: complete(server, p, 120, kv_policy="streamingllm", kv_budget=64).json(),
            prompts))
    assert server.metrics()["restkv:num_preemptions_total"] > before
    assert [t["choices"][0]["text"] for t in together] == [a["choices"][0]["text"] for a in alone]


def test_request_that_can_never_fit_is_refused_at_once(server):
    total = int(server.metrics()["restkv:kv_pages_total"])
    started = time.time()
    r = complete(server, prompt_of(server, 1500, 9), 16)
    assert time.time() - started < 10
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "kv_capacity_exceeded"
    assert f"has {total} pages" in error["message"], error["message"]
    # Nothing was left waiting behind it.
    assert complete(server, "Hello", 1).status_code == 200
    assert server.metrics()["restkv:num_requests_waiting"] == 0


def test_grpc_request_that_can_never_fit_is_resource_exhausted(server, tmp_path):
    grpc = pytest.importorskip("grpc")
    api = soak_load.grpc_api(server.grpc_port, tmp_path)
    if api is None:
        pytest.skip("grpcio-tools missing")
    pb, stub = api
    req = pb.GenerateRequest(text=prompt_of(server, 1500, 9), max_tokens=16, temperature=0)
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Generate(req, timeout=30))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "KV pages" in e.value.details()

