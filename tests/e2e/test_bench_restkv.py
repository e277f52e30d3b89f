"""`restkv bench` against a real `restkv serve` on the default model: record a few dozen
requests with --record-requests, replay the recording, and check every request is
accounted for and the token counts match the recording."""
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_server_openai import API_KEY, Server  # noqa: E402
from bench_test_helpers import read_lines  # noqa: E402

N = 24


def bench(restkv_bin, url, result, *args):
    proc = subprocess.run(
        [restkv_bin, "bench", "--url", url, "--api-key", API_KEY, "--no-progress", "--result",
         str(result),
         # A CPU-starved shared machine can pause the server for a minute; that is slowness,
         # not the stall this test is about.
         "--stall-timeout", "600", "--request-timeout", "1200", *map(str, args)],
        capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(pathlib.Path(result).read_text()), proc.stdout


def test_record_then_replay(restkv_bin, model_path, tmp_path):
    recording = tmp_path / "recording.jsonl"
    server = Server(restkv_bin, model_path, tmp_path / "server.log",
                    extra=("--record-requests", str(recording)))
    try:
        # Record: a synthetic closed-loop load of mixed lengths.
        first, _ = bench(restkv_bin, server.url, tmp_path / "first.json", "-n", N, "--seed", 3,
                         "--input-len", 32, "--output-len", 3, "--range-ratio", 0.4,
                         "--max-concurrency", 8)
        assert first["summary"]["completed"] == N, first["summary"]
        lines = read_lines(recording, N)
        assert len(lines) == N
        for line in lines:
            assert set(line) >= {"timestamp", "input_length", "output_length", "hash_ids",
                                 "endpoint", "ttft_ms", "e2e_ms", "finish", "ignore_eos"}
            assert len(line["hash_ids"]) == 1  # < 512 tokens: one block
            assert line["endpoint"] == "/v1/completions" and line["ignore_eos"] is True
        # The prompts were built to exact lengths with the server's tokenizer.
        assert sorted(l["input_length"] for l in lines) == sorted(
            r["expected_input_tokens"] for r in first["requests"])
        assert sorted(l["output_length"] for l in lines) == sorted(
            r["output_tokens"] for r in first["requests"])
        trace = tmp_path / "trace.jsonl"
        shutil.copy(recording, trace)

        # Replay the recording on its own timestamps, twice as fast.
        replay, out = bench(restkv_bin, server.url, tmp_path / "replay.json", "--replay", trace,
                            "--time-scale", 0.5)
        s = replay["summary"]
        assert s["num_requests"] == N == s["completed"] + s["failed"]
        assert s["failed"] == 0, s["errors"]
        assert len(replay["requests"]) == N
        assert sorted(r["prompt_tokens"] for r in replay["requests"]) == sorted(
            l["input_length"] for l in lines)
        assert sorted(r["output_tokens"] for r in replay["requests"]) == sorted(
            l["output_length"] for l in lines)
        want = sorted(l["timestamp"] / 1000 * 0.5 for l in lines)
        got = sorted(r["intended_s"] for r in replay["requests"])
        # Time scaling is exact up to float rounding of the recorded milliseconds.
        assert [g - got[0] for g in got] == pytest.approx([w - want[0] for w in want], abs=1e-6)
        # restkv as the target: its /metrics before and after are in the report.
        delta = replay["server_metrics"]["delta"]
        generated = sum(v for k, v in delta.items() if k.startswith("restkv:generation_tokens_total"))
        assert generated == s["total_output_tokens"]
        assert "restkv /metrics during the run" in out
        assert all(k in s for k in ("median_ttft_ms", "p99_itl_ms", "request_throughput"))
        # The replay was recorded too.
        assert len(read_lines(recording, 2 * N)) == 2 * N
    finally:
        assert server.stop() == 0


def test_unwritable_recording_keeps_serving(restkv_bin, model_path, tmp_path):
    server = Server(restkv_bin, model_path, tmp_path / "server.log",
                    extra=("--record-requests", "/nonexistent-dir/rec.jsonl"))
    try:
        r = server.post("/v1/completions", {"prompt": "Hi", "max_tokens": 2})
        assert r.status_code == 200
        assert "cannot open /nonexistent-dir/rec.jsonl" in server.log()
    finally:
        assert server.stop() == 0
