"""`restkv serve`'s gRPC frontend end to end: a client generated from proto/ with
grpcio-tools at test time, against one server on the default model that requires an
API key (which also covers UNAUTHENTICATED)."""
import os
import pathlib
import signal
import sys
import time

import pytest
import requests

from serve_process import ServeProcess, free_port

grpc = pytest.importorskip("grpc")
grpc_tools = pytest.importorskip("grpc_tools")
from grpc_tools import protoc  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
API_KEY = "grpc-test-key"
MODEL = "smollm"
AUTH = (("authorization", f"Bearer {API_KEY}"),)

# The standard health service's messages (grpc/health/v1/health.proto), written out
# here so the test needs no grpcio-health-checking.
HEALTH_PROTO = """
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
"""



@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    out = tmp_path_factory.mktemp("grpc_stubs")
    health_dir = out / "health_src" / "grpc_health_test" / "v1"
    health_dir.mkdir(parents=True)
    (health_dir / "health.proto").write_text(HEALTH_PROTO)
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    for proto_path, proto in ((ROOT / "proto", "restkv/v1/generation.proto"),
                              (out / "health_src", "grpc_health_test/v1/health.proto")):
        rc = protoc.main(["protoc", f"-I{proto_path}", f"-I{include}", f"--python_out={out}",
                          f"--grpc_python_out={out}", str(proto_path / proto)])
        assert rc == 0, f"protoc failed on {proto}"
    sys.path.insert(0, str(out))
    from restkv.v1 import generation_pb2, generation_pb2_grpc
    from grpc_health_test.v1 import health_pb2, health_pb2_grpc
    yield generation_pb2, generation_pb2_grpc, health_pb2, health_pb2_grpc
    sys.path.remove(str(out))


class GrpcServer(ServeProcess):
    def __init__(self, binary, model, log_path):
        self.grpc_port = free_port()
        super().__init__(binary, model, log_path, args=[
            "--grpc-port", str(self.grpc_port), "--served-model-name", MODEL,
            "--api-key", API_KEY, "--threads", "2", "--kv-cache-memory", "256MiB"])
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")

    def stop(self, timeout=60):
        self.channel.close()
        return super().stop(timeout)

    def pages_used(self):
        text = requests.get(self.url + "/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith("restkv:kv_pages_used{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError("restkv:kv_pages_used missing from /metrics")

    def wait_pages_free(self, timeout=10):
        deadline = time.time() + timeout
        while self.pages_used() != 0:
            assert time.time() < deadline, "KV pages were not released"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def server(restkv_bin, model_path, tmp_path_factory):
    binary = os.environ.get("RESTKV_BIN") or restkv_bin
    s = GrpcServer(binary, model_path, tmp_path_factory.mktemp("grpc_serve") / "serve.log")
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(scope="module")
def api(server, stubs):
    pb, pb_grpc, _, _ = stubs
    return pb, pb_grpc.GenerationStub(server.channel)


def _long_request(pb):
    return pb.GenerateRequest(text="Once upon a time", max_tokens=2000, ignore_eos=True,
                              temperature=0)


def test_generate_stream_greedy(api):
    pb, stub = api
    req = pb.GenerateRequest(model=MODEL, text="The capital of France is", max_tokens=8,
                             temperature=0)
    msgs = list(stub.Generate(req, metadata=AUTH, timeout=60))
    assert len(msgs) >= 2
    final = msgs[-1]
    assert final.finished and all(not m.finished for m in msgs[:-1])
    text = "".join(m.text for m in msgs)
    ids = [t for m in msgs for t in m.token_ids]
    assert "Paris" in text, text
    assert final.finish_reason in ("stop", "length")
    # An end token (EOS or stop id) is counted though not delivered, as vLLM counts it.
    ended_by_token = final.finish_reason == "stop" and not final.stop_reason
    assert final.usage.completion_tokens == len(ids) + ended_by_token >= 1
    assert final.usage.prompt_tokens > 0
    assert final.usage.total_tokens == final.usage.prompt_tokens + final.usage.completion_tokens
    assert final.usage.kv_tokens_kept > 0 and final.usage.kv_tokens_evicted == 0
    assert final.id and all(m.id == final.id for m in msgs)


def test_repeated_prefix_reports_cached_tokens(api):
    pb, stub = api
    # A prompt the other tests do not send: the first call finds nothing cached.
    text = "Prefix cache check: " + " ".join(f"item {i}" for i in range(60))
    finals = []
    for suffix in (" first", " second"):
        req = pb.GenerateRequest(model=MODEL, text=text + suffix, max_tokens=2, temperature=0)
        finals.append(list(stub.Generate(req, metadata=AUTH, timeout=60))[-1])
    assert finals[0].usage.cached_tokens == 0
    cached = finals[1].usage.cached_tokens
    assert 0 < cached < finals[1].usage.prompt_tokens and cached % 16 == 0, cached


def test_generate_chat_and_token_ids(api):
    pb, stub = api
    chat = pb.GenerateRequest(chat=pb.ChatMessages(messages=[
        pb.ChatMessage(role="user", content="What is the capital of France?")]),
        max_tokens=12, temperature=0)
    msgs = list(stub.Generate(chat, metadata=AUTH, timeout=60))
    assert msgs[-1].finished and msgs[-1].usage.completion_tokens >= 1
    ids = stub.Tokenize(pb.TokenizeRequest(text="The capital of France is"), metadata=AUTH).token_ids
    by_ids = list(stub.Generate(pb.GenerateRequest(token_ids=pb.TokenIds(ids=ids), max_tokens=8,
                                                   temperature=0), metadata=AUTH, timeout=60))
    assert "Paris" in "".join(m.text for m in by_ids)


def test_tokenize_matches_http(server, api):
    pb, stub = api
    got = stub.Tokenize(pb.TokenizeRequest(text="Hello, world! Paris"), metadata=AUTH, timeout=10)
    http = requests.post(server.url + "/tokenize", json={"prompt": "Hello, world! Paris"},
                         headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10).json()
    assert list(got.token_ids) == http["tokens"]
    assert got.count == http["count"] and got.max_model_len == http["max_model_len"]


def test_list_models(api):
    pb, stub = api
    models = stub.ListModels(pb.ListModelsRequest(), metadata=AUTH, timeout=10).models
    assert [m.id for m in models] == [MODEL] and models[0].max_model_len > 0


def test_health_serving(server, stubs):
    _, _, hpb, hpb_grpc = stubs
    health = hpb_grpc.HealthStub(server.channel)
    for service in ("", "restkv.v1.Generation"):
        resp = health.Check(hpb.HealthCheckRequest(service=service), timeout=10)
        assert resp.status == hpb.HealthCheckResponse.SERVING


def test_cancel_mid_stream_frees_pages(server, api):
    pb, stub = api
    call = stub.Generate(_long_request(pb), metadata=AUTH, timeout=60)
    got = 0
    for msg in call:
        got += len(msg.token_ids)
        if got >= 3:
            break
    assert server.pages_used() > 0
    call.cancel()
    with pytest.raises(grpc.RpcError) as e:
        for _ in call:
            pass
    assert e.value.code() == grpc.StatusCode.CANCELLED
    server.wait_pages_free()


def test_deadline_exceeded_frees_pages(server, api):
    pb, stub = api
    with pytest.raises(grpc.RpcError) as e:
        for _ in stub.Generate(_long_request(pb), metadata=AUTH, timeout=0.5):
            pass
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    server.wait_pages_free()


@pytest.mark.parametrize("fields, words", [
    ({"temperature": -1.0}, ["temperature"]),
    ({"top_p": 1.5}, ["top_p"]),
    ({"max_tokens": 0}, ["max_tokens"]),
    ({"logprobs": 99}, ["logprobs"]),
    ({"kv_policy": "nope"}, ["nope"]),
    ({"stop_token_ids": [10 ** 9]}, []),
    # The server runs fcfs: no caller may jump the queue.
    ({"priority": -5}, ["priority", "--scheduling-policy priority"]),
])
def test_invalid_params(api, fields, words):
    pb, stub = api
    req = pb.GenerateRequest(**{"text": "Hello", "max_tokens": 4, **fields})
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Generate(req, metadata=AUTH, timeout=10))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    for w in words:
        assert w in e.value.details()


def test_prompt_too_long_names_lengths(api):
    pb, stub = api
    max_len = stub.ListModels(pb.ListModelsRequest(), metadata=AUTH).models[0].max_model_len
    req = pb.GenerateRequest(token_ids=pb.TokenIds(ids=[1] * (max_len + 5)), max_tokens=4)
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Generate(req, metadata=AUTH, timeout=10))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(max_len) in e.value.details() and str(max_len + 5) in e.value.details()


def test_missing_input_and_unknown_model(api):
    pb, stub = api
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Generate(pb.GenerateRequest(max_tokens=4), metadata=AUTH, timeout=10))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Generate(pb.GenerateRequest(model="gpt-4", text="Hi"), metadata=AUTH, timeout=10))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_api_key(api):
    pb, stub = api
    req = pb.GenerateRequest(text="Hi", max_tokens=2, temperature=0)
    for metadata in ((), (("authorization", "Bearer wrong"),), (("x-api-key", "wrong"),)):
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Generate(req, metadata=metadata, timeout=10))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as e:
        stub.ListModels(pb.ListModelsRequest(), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert list(stub.Generate(req, metadata=(("x-api-key", API_KEY),), timeout=30))[-1].finished
    assert list(stub.Generate(req, metadata=AUTH, timeout=30))[-1].finished


def test_drain_not_serving_then_exit(restkv_bin, model_path, stubs, tmp_path):
    """SIGTERM: health turns NOT_SERVING, new calls get UNAVAILABLE, the call in
    flight still completes, and the process exits 0."""
    pb, pb_grpc, hpb, hpb_grpc = stubs
    s = GrpcServer(os.environ.get("RESTKV_BIN") or restkv_bin, model_path, tmp_path / "serve.log")
    try:
        stub, health = pb_grpc.GenerationStub(s.channel), hpb_grpc.HealthStub(s.channel)
        call = stub.Generate(pb.GenerateRequest(text="Once upon a time", max_tokens=100,
                                                ignore_eos=True, temperature=0),
                             metadata=AUTH, timeout=60)
        msgs = [next(call)]
        s.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while health.Check(hpb.HealthCheckRequest(), timeout=5).status != \
                hpb.HealthCheckResponse.NOT_SERVING:
            assert time.time() < deadline, "health stayed SERVING while draining"
            time.sleep(0.05)
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Generate(pb.GenerateRequest(text="Hi", max_tokens=2), metadata=AUTH, timeout=5))
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        msgs += list(call)
        assert msgs[-1].finished and msgs[-1].finish_reason == "length"
        assert sum(len(m.token_ids) for m in msgs) == 100
        s.channel.close()
        assert s.proc.wait(timeout=30) == 0, s.log()
    finally:
        if s.proc.poll() is None:
            s.proc.kill()


def test_logprobs_and_stop_string(api):
    pb, stub = api
    msgs = list(stub.Generate(pb.GenerateRequest(text="The capital of France is", max_tokens=4,
                                                 temperature=0, logprobs=2),
                              metadata=AUTH, timeout=60))
    lps = [lp for m in msgs for lp in m.logprobs]
    ended_by_token = msgs[-1].finish_reason == "stop" and not msgs[-1].stop_reason
    assert len(lps) + ended_by_token == msgs[-1].usage.completion_tokens
    assert all(len(lp.top) == 2 and lp.logprob <= 0 for lp in lps)
    assert lps[0].token_id == lps[0].top[0].token_id  # greedy picks the most likely
    text = "".join(m.text for m in msgs)
    stop = text.strip().split()[0]
    msgs = list(stub.Generate(pb.GenerateRequest(text="The capital of France is", max_tokens=8,
                                                 temperature=0, stop=[stop]),
                              metadata=AUTH, timeout=60))
    assert msgs[-1].finish_reason == "stop" and msgs[-1].stop_reason == stop
    assert stop not in "".join(m.text for m in msgs)


def test_vllm_sampling_fields(api):
    pb, stub = api
    def one_token(text):
        ids = stub.Tokenize(pb.TokenizeRequest(text=text, add_special_tokens=False),
                            metadata=AUTH).token_ids
        assert len(ids) == 1, ids
        return ids[0]

    banana, comma = one_token(" banana"), one_token(",")

    def run(**kw):
        msgs = list(stub.Generate(pb.GenerateRequest(text="The capital of France is",
                                                     temperature=0, **kw),
                                  metadata=AUTH, timeout=60))
        return "".join(m.text for m in msgs), msgs[-1]

    text, final = run(max_tokens=1, logit_bias={banana: 100.0})
    assert text == " banana"
    # A stop token forced by the bias: stop_token_id says which, and it is counted.
    text, final = run(max_tokens=8, logit_bias={comma: 100.0}, stop_token_ids=[comma])
    assert text == "" and final.finish_reason == "stop"
    assert final.HasField("stop_token_id") and final.stop_token_id == comma
    assert final.usage.completion_tokens == 1
    # min_tokens holds it off; include_stop_str_in_output keeps its text.
    text, final = run(max_tokens=8, logit_bias={comma: 100.0}, stop_token_ids=[comma],
                      min_tokens=3, include_stop_str_in_output=True)
    assert final.usage.completion_tokens == 4 and text.endswith(",") and final.stop_token_id == comma
    _, final = run(max_tokens=2)
    assert not final.HasField("stop_token_id")
    # truncate_prompt_tokens keeps the last tokens.
    _, final = run(max_tokens=1, truncate_prompt_tokens=2)
    assert final.usage.prompt_tokens == 2
    with pytest.raises(grpc.RpcError) as e:
        run(max_tokens=2, min_tokens=3)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "min_tokens" in e.value.details()


def test_x_request_id_metadata_is_the_id(api, server):
    pb, stub = api
    msgs = list(stub.Generate(pb.GenerateRequest(text="hi", max_tokens=2),
                              metadata=AUTH + (("x-request-id", "grpc trace"),), timeout=60))
    assert all(m.id == "cmpl-grpc_trace" for m in msgs)
    deadline = time.time() + 10
    while "cmpl-grpc_trace" not in server.log():
        assert time.time() < deadline, server.log()
        time.sleep(0.05)
