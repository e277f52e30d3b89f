"""`restkv serve` cannot be starved: /health, /live and /metrics
answer within 100 ms while multi-megabyte prompts arrive, because requests are
parsed and tokenized off the I/O threads; a prompt whose byte length proves it
cannot fit the context is refused before it is tokenized; a full prepare queue
is a 503 with an OpenAI error."""
import concurrent.futures
import json
import subprocess
import sys
import time

import openai
import pytest
import requests

from serve_process import ServeProcess
from test_server_openai import server_bin  # noqa: F401  (the RESTKV_BIN-aware fixture)

MODEL = "smollm"


class Server(ServeProcess):
    def __init__(self, binary, model, log_path, extra=()):
        super().__init__(binary, model, log_path, args=[
            "--grpc-port", "0", "--served-model-name", MODEL, "--threads", "2",
            "--kv-cache-memory", "256MiB", "--max-body-size", "32MiB", *extra])

    def client(self):
        return openai.OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0,
                             timeout=120)


@pytest.fixture(scope="module")
def server(server_bin, model_path, tmp_path_factory):  # noqa: F811
    s = Server(server_bin, model_path, tmp_path_factory.mktemp("serve") / "serve.log")
    yield s
    assert s.stop() == 0, s.log()


def _probe_latencies(server, seconds):
    worst = {}
    deadline = time.time() + seconds
    while time.time() < deadline:
        for path in ("/health", "/live", "/metrics"):
            t = time.perf_counter()
            r = requests.get(server.url + path, timeout=30)
            elapsed = time.perf_counter() - t
            assert r.status_code == 200, (path, r.status_code)
            worst[path] = max(worst.get(path, 0.0), elapsed)
        time.sleep(0.02)
    return worst


# Posts two 8 MB single-word completions and two 10 MB /tokenize bodies at once
# and prints one JSON line per answer. It runs in a process of its own, so that
# encoding, sending and decoding these bodies cannot hold up (through the GIL)
# the probes this test times.
HEAVY_CLIENT = r"""
import concurrent.futures, json, sys, threading, requests
url, model = sys.argv[1], sys.argv[2]
word = json.dumps({"model": model, "prompt": "a" * (8 << 20), "max_tokens": 1}).encode()
big = json.dumps({"model": model, "prompt": "b" * (10 << 20)}).encode()
def post(path, data):
    r = requests.post(url + path, data=data, timeout=600,
                      headers={"Content-Type": "application/json"})
    body = r.json()
    if "count" in body:
        body = {"count": body["count"]}
    # One line per answer: print() writes the text and the newline apart, so
    # two threads' lines could run together without the lock.
    with printing:
        print(json.dumps({"path": path, "status": r.status_code, "body": body}), flush=True)
printing = threading.Lock()
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    jobs = [("/v1/completions", word)] * 2 + [("/tokenize", big)] * 2
    list(pool.map(lambda job: post(*job), jobs))
"""


def test_probes_answer_within_100ms_while_huge_prompts_arrive(server):
    heavy = subprocess.Popen([sys.executable, "-c", HEAVY_CLIENT, server.url, MODEL],
                             stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # the bodies are on their way and then being worked on
        worst = _probe_latencies(server, 5.0)
        out, _ = heavy.communicate(timeout=600)
    finally:
        heavy.kill()
    assert all(v < 0.1 for v in worst.values()), f"worst probe latency (s): {worst}"
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == 4, out
    completions = [r for r in results if r["path"] == "/v1/completions"]
    tokenized = [r for r in results if r["path"] == "/tokenize"]
    for r in completions:
        assert r["status"] == 400, r
        err = r["body"]["error"]
        assert err["param"] == "prompt"
        assert "8388608 bytes" in err["message"] and "maximum context length" in err["message"]
    for r in tokenized:
        assert r["status"] == 200, r
        assert r["body"]["count"] >= 1


def test_chat_prompt_too_long_by_bytes_is_400_without_tokenizing(server):
    client = server.client()
    t = time.perf_counter()
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "z" * (8 << 20)}])
    assert time.perf_counter() - t < 5
    assert e.value.body["param"] == "messages"
    assert "maximum context length" in e.value.body["message"]


def test_completion_prompt_too_long_by_bytes_is_400_without_tokenizing(server):
    client = server.client()
    t = time.perf_counter()
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, max_tokens=1, prompt=["ok", "y" * (8 << 20)])
    assert time.perf_counter() - t < 5
    assert e.value.body["param"] == "prompt[1]"
    assert "8388608 bytes" in e.value.body["message"]


def test_prompts_under_the_byte_bound_are_still_served(server):
    out = server.client().completions.create(model=MODEL, prompt="The capital of France is",
                                             max_tokens=2, temperature=0)
    assert out.usage.prompt_tokens >= 1 and out.usage.completion_tokens >= 1


def test_full_prepare_queue_is_503(server_bin, model_path, tmp_path):  # noqa: F811
    s = Server(server_bin, model_path, tmp_path / "serve.log",
               extra=["--prepare-threads", "1", "--prepare-queue", "1"])
    try:
        body = json.dumps({"model": MODEL, "prompt": "b" * (1 << 20)}).encode()

        def tokenize(_):
            return requests.post(s.url + "/tokenize", data=body, timeout=300,
                                 headers={"Content-Type": "application/json"})

        # Four at once against one worker and a queue of one: one runs, one
        # waits, the rest are refused at once instead of queueing.
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(tokenize, range(4)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses.count(503) >= 1 and statuses.count(200) >= 1, statuses
        refused = next(r for r in responses if r.status_code == 503)
        assert "busy" in refused.json()["error"]["message"]
        assert requests.get(s.url + "/health", timeout=5).status_code == 200
        # The server is not left stuck: once the queue drains, requests are served.
        assert s.client().completions.create(model=MODEL, prompt="hi", max_tokens=1).choices
    finally:
        assert s.stop() == 0, s.log()
