"""`restkv bench --grpc` against a real `restkv serve --grpc-port ... --record-requests` on
the default model: gRPC and HTTP requests are both recorded (endpoint field), the recording
replays over gRPC with every request accounted for and the recorded token counts; and
`--tokenizer MODEL.gguf` builds prompts of exact lengths for a target without /tokenize."""
import json
import pathlib
import subprocess
import sys

import pytest
import requests

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fake_openai_server import FakeConfig, FakeServer  # noqa: E402
from serve_process import ServeProcess, free_port  # noqa: E402
from bench_test_helpers import read_lines  # noqa: E402

pytest.importorskip("grpc")

API_KEY = "bench-grpc-key"
N_GRPC = 16
N_HTTP = 4


def bench(restkv_bin, result, *args):
    proc = subprocess.run(
        [restkv_bin, "bench", "--no-progress", "--result", str(result),
         # A CPU-starved shared machine can pause the server for a minute; that is slowness,
         # not the stall this test is about.
         "--stall-timeout", "600", "--request-timeout", "1200", *map(str, args)],
        capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(pathlib.Path(result).read_text()), proc.stdout


@pytest.fixture(scope="module")
def server(restkv_bin, model_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grpc_serve")
    grpc_port = free_port()
    recording = tmp / "recording.jsonl"
    s = ServeProcess(restkv_bin, model_path, tmp / "server.log", args=[
        "--grpc-port", str(grpc_port), "--api-key", API_KEY, "--threads", "2",
        "--kv-cache-memory", "256MiB", "--record-requests", str(recording)])
    s.grpc = f"127.0.0.1:{grpc_port}"
    s.recording = recording
    yield s
    assert s.stop() == 0


def test_grpc_requests_recorded_and_replayed_over_grpc(restkv_bin, server, tmp_path):
    # Record: a closed-loop gRPC load of mixed lengths, and a few HTTP requests.
    first, _ = bench(restkv_bin, tmp_path / "grpc.json", "--grpc", server.grpc, "--api-key",
                     API_KEY, "-n", N_GRPC, "--seed", 5, "--input-len", 24, "--output-len", 3,
                     "--range-ratio", 0.4, "--max-concurrency", 4, "--metrics-url", server.url)
    assert first["summary"]["completed"] == N_GRPC, first["summary"]
    assert first["workload"]["tokenizer"] == "target gRPC Tokenize"
    http, _ = bench(restkv_bin, tmp_path / "http.json", "--url", server.url, "--api-key", API_KEY,
                    "-n", N_HTTP, "--input-len", 20, "--output-len", 2, "--max-concurrency", 4)
    assert http["summary"]["completed"] == N_HTTP
    lines = read_lines(server.recording, N_GRPC + N_HTTP)
    assert len(lines) == N_GRPC + N_HTTP
    grpc_lines = [l for l in lines if l["endpoint"] == "grpc:Generate"]
    http_lines = [l for l in lines if l["endpoint"] == "/v1/completions"]
    assert len(grpc_lines) == N_GRPC and len(http_lines) == N_HTTP
    for line in grpc_lines:
        assert set(line) >= {"timestamp", "input_length", "output_length", "hash_ids", "ttft_ms",
                             "e2e_ms", "finish", "ignore_eos", "status", "stream"}
        assert line["status"] == 200 and line["finish"] == "length" and line["stream"] is True
        assert line["ignore_eos"] is True and line["temperature"] == 0
        assert len(line["hash_ids"]) == 1 and line["ttft_ms"] > 0
        assert line["e2e_ms"] >= line["ttft_ms"]
    # The prompts were built to exact lengths with the server's tokenizer over gRPC, and the
    # bench's counts (usage, cross-checked with the streamed ids) are the server's.
    assert sorted(l["input_length"] for l in grpc_lines) == sorted(
        r["expected_input_tokens"] for r in first["requests"])
    assert sorted(l["output_length"] for l in grpc_lines) == sorted(
        r["output_tokens"] for r in first["requests"])
    assert all(r["streamed_tokens"] == r["output_tokens"] for r in first["requests"])
    # --metrics-url gives restkv's /metrics around a gRPC run.
    delta = first["server_metrics"]["delta"]
    assert sum(v for k, v in delta.items()
               if k.startswith("restkv:generation_tokens_total")) == first["summary"]["total_output_tokens"]

    # Replay the whole recording (gRPC and HTTP rows) over gRPC, five times as fast.
    trace = tmp_path / "trace.jsonl"
    trace.write_text(server.recording.read_text())
    replay, out = bench(restkv_bin, tmp_path / "replay.json", "--grpc", server.grpc, "--api-key",
                        API_KEY, "--replay", trace, "--time-scale", 0.2)
    s = replay["summary"]
    n = N_GRPC + N_HTTP
    assert s["num_requests"] == n == s["completed"] + s["failed"] == len(replay["requests"])
    assert s["failed"] == 0, s["errors"]
    assert sorted(r["prompt_tokens"] for r in replay["requests"]) == sorted(
        l["input_length"] for l in lines)
    assert sorted(r["output_tokens"] for r in replay["requests"]) == sorted(
        l["output_length"] for l in lines)
    assert s["usage_mismatches"] == 0 and s["total_output_tokens"] == sum(l["output_length"] for l in lines)
    # The JSON report is well formed: target, config, workload, summary, one record a request.
    assert replay["target"] == {"transport": "grpc", "grpc": server.grpc, "url": None,
                                "endpoint": "restkv.v1.Generation/Generate",
                                "model": first["target"]["model"]}
    assert replay["config"]["use_trace_times"] is True
    for key in ("median_ttft_ms", "p99_itl_ms", "mean_tpot_ms", "p90_e2el_ms", "request_throughput",
                "output_throughput"):
        assert isinstance(s[key], (int, float)), key
    for r in replay["requests"]:
        assert r["ok"] and r["ttft_ms"] <= r["e2el_ms"] and len(r["itl_ms"]) == r["chunks"] - 1
    assert "Serving Benchmark Result" in out
    # The replay was recorded too, all of it as gRPC.
    again = read_lines(server.recording, 2 * n)
    assert len(again) == 2 * n
    assert all(l["endpoint"] == "grpc:Generate" for l in again[n:])


def test_local_gguf_tokenizer_builds_exact_lengths(restkv_bin, model_path, server, tmp_path):
    # A target without /tokenize: the fake OpenAI server. Prompts come from the GGUF's tokenizer.
    fake = FakeServer(FakeConfig(ttft=0.01, itl=0.0))
    try:
        data, _ = bench(restkv_bin, tmp_path / "local.json", "--url", fake.url, "--tokenizer",
                        model_path, "-n", 4, "--input-len", 60, "--range-ratio", 0.5,
                        "--output-len", 1, "--seed", 9)
    finally:
        fake.stop()
    assert data["workload"]["tokenizer"] == f"local GGUF {model_path}"
    assert data["config"]["max_model_len"] == 8192  # the GGUF's context, the fake reports none
    want = sorted(r["expected_input_tokens"] for r in data["requests"])
    assert len(set(want)) > 1  # mixed lengths
    # The real server (same model) counts exactly the requested lengths.
    got = []
    for body in fake.requests:
        r = requests.post(server.url + "/tokenize", timeout=60,
                          headers={"Authorization": f"Bearer {API_KEY}"},
                          json={"prompt": body["prompt"], "add_special_tokens": False})
        assert r.status_code == 200, r.text
        got.append(len(r.json()["tokens"]))
    assert sorted(got) == want
    # A file that is not a model is a clear error.
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf")
    proc = subprocess.run([restkv_bin, "bench", "--url", "http://127.0.0.1:9", "--model", "x",
                           "--tokenizer", str(bad), "-n", "1"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and f"--tokenizer {bad}" in proc.stderr
