"""`restkv bench` against a fake OpenAI server with controlled delays: measured latencies
match the injected ones, saturation shows up as latency from the intended send time,
and stalls, drops and HTTP errors are counted errors, never hangs."""
import json
import pathlib
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fake_openai_server import FakeConfig, FakeServer  # noqa: E402
from bench_test_helpers import pair_with_server, fake_lateness  # noqa: E402


@pytest.fixture
def fake():
    servers = []

    def start(**kw):
        s = FakeServer(FakeConfig(**kw))
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def run_bench(restkv_bin, tmp_path, url, *args, timeout=120):
    result = tmp_path / "result.json"
    t0 = time.monotonic()
    proc = subprocess.run(
        [restkv_bin, "bench", "--url", url, "--no-progress", "--seed", "1", "--result", str(result),
         *map(str, args)],
        capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - t0
    data = json.loads(result.read_text()) if result.exists() else None
    return proc, data, elapsed


def test_latencies_match_injected_delays(restkv_bin, tmp_path, fake):
    srv = fake(ttft=0.25, itl=0.05)
    proc, data, _ = run_bench(restkv_bin, tmp_path, srv.url, "-n", 8, "--request-rate", 4,
                              "--input-len", 16, "--output-len", 6)
    assert proc.returncode == 0, proc.stderr
    s = data["summary"]
    assert s["completed"] == 8 and s["failed"] == 0
    assert len(data["requests"]) == 8
    pairs = pair_with_server(data, srv)
    # 1. The client measures what the server did: TTFT and E2E from the intended send time
    #    to the fake's own write times, ITL as its gaps (reading adds a few ms).
    for r, t in pairs:
        assert r["ttft_ms"] == pytest.approx((t["chunks"][0] - r["intended_s"]) * 1000, abs=30)
        assert r["e2el_ms"] == pytest.approx((t["done"] - r["intended_s"]) * 1000, abs=30)
        gaps = [(b - a) * 1000 for a, b in zip(t["chunks"], t["chunks"][1:])]
        assert sum(r["itl_ms"]) == pytest.approx(sum(gaps), abs=30)
    # 2. Injected: TTFT 250 ms, ITL 50 ms, 6 tokens => TPOT 50 ms, E2E 500 ms. Allowed: 40 ms
    #    for connection set-up and scheduling, plus however late the fake itself ran.
    late_ms = fake_lateness(pairs, 0.25, 0.05) * 1000
    for key, want in [("ttft", 250), ("itl", 50), ("tpot", 50), ("e2el", 500)]:
        for stat in ("median", "p90"):
            got = s[f"{stat}_{key}_ms"]
            slack = 40 + (late_ms if key in ("ttft", "e2el") else late_ms / 5)
            assert want - 5 <= got <= want + slack, (key, stat, got, late_ms)
    assert s["total_output_tokens"] == 48
    assert "Serving Benchmark Result" in proc.stdout and "Median TTFT (ms):" in proc.stdout
    # The fake was asked for what the workload said, with ignore_eos and usage.
    body = srv.requests[0]
    assert body["max_tokens"] == 6 and body["ignore_eos"] is True and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_chat_endpoint(restkv_bin, tmp_path, fake):
    srv = fake(ttft=0.05, itl=0.01)
    proc, data, _ = run_bench(restkv_bin, tmp_path, srv.url, "-n", 3, "--endpoint",
                              "/v1/chat/completions", "--output-len", 4)
    assert proc.returncode == 0, proc.stderr
    assert data["summary"]["completed"] == 3
    assert srv.requests[0]["messages"][0]["role"] == "user"
    assert all(r["chunks"] == 4 for r in data["requests"])


def test_saturated_server_latency_grows_from_intended_send(restkv_bin, tmp_path, fake):
    # One request at a time, 0.2 s each; 10 requests offered within ~0.5 s: a queue.
    srv = fake(ttft=0.1, itl=0.05, capacity=1)
    proc, data, _ = run_bench(restkv_bin, tmp_path, srv.url, "-n", 10, "--request-rate", 20,
                              "--output-len", 3)
    assert proc.returncode == 0, proc.stderr
    reqs = data["requests"]
    assert data["summary"]["completed"] == 10
    # One at a time: each request finishes about one service time (0.2 s) after the one
    # before it, whatever its own arrival...
    pairs = pair_with_server(data, srv)
    done = sorted(t["done"] for _, t in pairs)
    assert all(b - a >= 0.19 for a, b in zip(done, done[1:]))
    # ...and the client's latencies run to those completions from the intended send
    # time, so they grow along the queue (no coordinated omission).
    for r, t in pairs:
        assert r["done_s"] == pytest.approx(t["done"], abs=0.03)
        assert r["e2el_ms"] / 1000 == pytest.approx(r["done_s"] - r["intended_s"], abs=1e-3)
    e2el = sorted(r["e2el_ms"] for r in reqs)
    assert e2el[-1] > 4 * e2el[0]


def test_closed_loop_max_concurrency(restkv_bin, tmp_path, fake):
    srv = fake(ttft=0.1, itl=0.02)
    proc, data, _ = run_bench(restkv_bin, tmp_path, srv.url, "-n", 9, "--max-concurrency", 3,
                              "--output-len", 2)
    assert proc.returncode == 0, proc.stderr
    assert data["summary"]["max_concurrent_requests"] == 3
    # Closed loop: latency counts from when a slot opened, so no queueing shows (with
    # open-loop accounting the last three would wait ~2 services, > 240 ms).
    late_ms = fake_lateness(pair_with_server(data, srv), 0.1, 0.02) * 1000
    assert data["summary"]["p99_ttft_ms"] < 100 + 40 + late_ms


def test_stall_is_a_counted_error_not_a_hang(restkv_bin, tmp_path, fake):
    srv = fake(ttft=0.05, mode="stall")
    proc, data, elapsed = run_bench(restkv_bin, tmp_path, srv.url, "-n", 4, "--output-len", 4,
                                    "--stall-timeout", 1, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert data["summary"]["failed"] == 4
    assert data["summary"]["errors"] == {"stall": 4}
    assert elapsed < 15


def test_request_timeout_bounds_a_slow_stream(restkv_bin, tmp_path, fake):
    srv = fake(ttft=0.05, itl=0.5)
    proc, data, elapsed = run_bench(restkv_bin, tmp_path, srv.url, "-n", 2, "--output-len", 50,
                                    "--request-timeout", 1.5, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert data["summary"]["errors"] == {"timeout": 2}
    assert elapsed < 15


def test_dropped_connections_and_http_errors_are_counted(restkv_bin, tmp_path, fake):
    srv = fake(ttft=0.02, itl=0.01, mode="drop")
    proc, data, _ = run_bench(restkv_bin, tmp_path, srv.url, "-n", 3, "--output-len", 5)
    assert proc.returncode == 0, proc.stderr
    assert data["summary"]["failed"] == 3
    assert set(data["summary"]["errors"]) <= {"closed", "incomplete"}
    srv2 = fake(mode="status", status=429)
    proc, data, _ = run_bench(restkv_bin, tmp_path, srv2.url, "-n", 3)
    assert data["summary"]["errors"] == {"http_429": 3}
    # Nothing listening: connection errors, quickly.
    proc, data, elapsed = run_bench(restkv_bin, tmp_path, "http://127.0.0.1:9", "-n", 2,
                                    "--model", "x")
    assert data["summary"]["errors"] == {"connect": 2}
    assert data["summary"]["num_requests"] == data["summary"]["completed"] + data["summary"]["failed"]


def test_replay_follows_trace_times_scaled(restkv_bin, tmp_path, fake):
    srv = fake(ttft=0.01, itl=0.0)
    trace = tmp_path / "trace.jsonl"
    times = [0, 400, 1000, 1200, 2000]
    with trace.open("w") as f:
        for i, t in enumerate(times):
            f.write(json.dumps({"timestamp": t, "input_length": 600, "output_length": 2 + i,
                                "hash_ids": [0, i + 1]}) + "\n")
    proc, data, _ = run_bench(restkv_bin, tmp_path, srv.url, "--replay", trace,
                              "--time-scale", 0.5, "--window", "0.3:")
    assert proc.returncode == 0, proc.stderr
    reqs = sorted(data["requests"], key=lambda r: r["intended_s"])
    assert [r["intended_s"] for r in reqs] == pytest.approx([0.05, 0.35, 0.45, 0.85], abs=1e-3)
    for r in reqs:
        assert 0 <= r["sent_s"] - r["intended_s"] < 0.2
    assert [r["output_tokens"] for r in reqs] == [3, 4, 5, 6]
    # The shared first block gives the same prompt prefix (no /tokenize: 1 word per token).
    prompts = [b["prompt"] for b in srv.requests]
    first_block = prompts[0].split()[:512]
    assert all(p.split()[:512] == first_block for p in prompts)
    assert prompts[0].split()[512:] != prompts[1].split()[512:]


def test_bad_trace_line_names_file_and_line(restkv_bin, tmp_path, fake):
    srv = fake()
    trace = tmp_path / "bad.jsonl"
    trace.write_text('{"timestamp": 0, "input_length": 5, "output_length": 1}\n{"timestamp": 1}\n')
    proc, _, _ = run_bench(restkv_bin, tmp_path, srv.url, "--replay", trace)
    assert proc.returncode == 1
    assert f"{trace}:2: 'input_length' is missing" in proc.stderr


def test_sweep_reports_saturation(restkv_bin, tmp_path, fake):
    srv = fake(ttft=0.05, itl=0.05, capacity=1)  # ~0.1 s each => ~10 req/s at most
    proc, data, _ = run_bench(restkv_bin, tmp_path, srv.url, "-n", 8, "--sweep", "2,40",
                              "--output-len", 2)
    assert proc.returncode == 0, proc.stderr
    assert [s["request_rate"] for s in data["sweep"]] == [2, 40]
    assert data["first_unsustained_rate"] == 40
    assert 2 < data["saturation_request_rate"] < 13
    # Each rate sends its own prompt text (no prompt cache warmed by the rate before).
    prompts = [b["prompt"] for b in srv.requests]
    assert len(prompts) == 16
    assert set(prompts[:8]).isdisjoint(prompts[8:])
    assert sorted(len(p.split()) for p in prompts[:8]) == sorted(len(p.split()) for p in prompts[8:])


def test_plot_writes_pngs(restkv_bin, tmp_path, fake):
    srv = fake(ttft=0.02, itl=0.01)
    plots = tmp_path / "plots"
    proc, _, _ = run_bench(restkv_bin, tmp_path, srv.url, "-n", 4, "--output-len", 3,
                           "--plot", plots, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("latency_cdf.png", "over_time.png"):
        png = (plots / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
