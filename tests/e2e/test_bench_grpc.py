"""`restkv bench --grpc` against a fake restkv.v1.Generation server (fake_grpc_server.py)
with controlled delays: measured TTFT, ITL, TPOT and E2E match the injected delays,
token counts come from usage and agree with the streamed ids, and a stalling, slow,
failing or absent server gives counted errors, never a hang."""
import json
import pathlib
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc_tools")
from fake_grpc_server import FakeGrpcConfig, FakeGrpcServer, generate_stubs  # noqa: E402
from bench_test_helpers import pair_with_server, fake_lateness  # noqa: E402


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    return generate_stubs(tmp_path_factory.mktemp("grpc_stubs"))


@pytest.fixture
def fake(stubs):
    servers = []

    def start(**kw):
        s = FakeGrpcServer(stubs, FakeGrpcConfig(**kw))
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def run_bench(restkv_bin, tmp_path, address, *args, timeout=120):
    result = tmp_path / "result.json"
    result.unlink(missing_ok=True)
    t0 = time.monotonic()
    proc = subprocess.run(
        [restkv_bin, "bench", "--grpc", address, "--no-progress", "--seed", "1", "--result",
         str(result), *map(str, args)],
        capture_output=True, text=True, timeout=timeout)
    elapsed = time.monotonic() - t0
    data = json.loads(result.read_text()) if result.exists() else None
    return proc, data, elapsed


def test_latencies_match_injected_delays(restkv_bin, tmp_path, fake):
    srv = fake(ttft=0.25, itl=0.05)
    proc, data, _ = run_bench(restkv_bin, tmp_path, srv.address, "-n", 8, "--request-rate", 4,
                              "--input-len", 16, "--output-len", 6, "--api-key", "sekrit")
    assert proc.returncode == 0, proc.stderr
    s = data["summary"]
    assert s["completed"] == 8 and s["failed"] == 0, s["errors"]
    assert data["target"]["transport"] == "grpc" and data["target"]["model"] == "fake"
    assert data["workload"]["tokenizer"] == "target gRPC Tokenize"
    pairs = pair_with_server(data, srv)
    # 1. What the client measured is what the server did, from the intended send time.
    for r, t in pairs:
        assert r["ttft_ms"] == pytest.approx((t["chunks"][0] - r["intended_s"]) * 1000, abs=30)
        assert r["e2el_ms"] == pytest.approx((t["done"] - r["intended_s"]) * 1000, abs=30)
        gaps = [(b - a) * 1000 for a, b in zip(t["chunks"], t["chunks"][1:])]
        assert len(r["itl_ms"]) == len(gaps) == 5
        assert sum(r["itl_ms"]) == pytest.approx(sum(gaps), abs=30)
        # Token counts: usage, and the streamed ids agree with it.
        assert r["output_tokens"] == 6 and r["streamed_tokens"] == 6 and r["chunks"] == 6
        assert r["prompt_tokens"] == 7 and r["finish_reason"] == "length"
    # 2. Injected: TTFT 250 ms, ITL 50 ms, 6 tokens => TPOT 50 ms, E2E 500 ms.
    late_ms = fake_lateness(pairs, 0.25, 0.05) * 1000
    for key, want in [("ttft", 250), ("itl", 50), ("tpot", 50), ("e2el", 500)]:
        for stat in ("median", "p90"):
            got = s[f"{stat}_{key}_ms"]
            slack = 40 + (late_ms if key in ("ttft", "e2el") else late_ms / 5)
            assert want - 5 <= got <= want + slack, (key, stat, got, late_ms)
    assert s["total_output_tokens"] == 48 and s["usage_mismatches"] == 0
    # 3. The requests: the workload's lengths, ignore_eos, the key as Bearer metadata.
    req = srv.requests[0]
    assert req.max_tokens == 6 and req.ignore_eos and req.model == "fake"
    assert len(req.text.split()) == 16  # the fake's Tokenize counts words
    assert all(m.get("authorization") == "Bearer sekrit" for m in srv.metadata)


def test_saturated_server_latency_grows_from_intended_send(restkv_bin, tmp_path, fake):
    srv = fake(ttft=0.1, itl=0.05, capacity=1)  # one call at a time, ~0.2 s each
    proc, data, _ = run_bench(restkv_bin, tmp_path, srv.address, "-n", 8, "--request-rate", 20,
                              "--output-len", 3)
    assert proc.returncode == 0, proc.stderr
    assert data["summary"]["completed"] == 8
    pairs = pair_with_server(data, srv)
    # The fake's one slot is not handed out in arrival order, so compare the completions
    # as sets: the client saw each one when the server finished it.
    assert sorted(r["done_s"] for r, _ in pairs) == pytest.approx(
        sorted(t["done"] for _, t in pairs), abs=0.05)
    for r, _ in pairs:
        assert r["e2el_ms"] / 1000 == pytest.approx(r["done_s"] - r["intended_s"], abs=1e-3)
    # Open loop: all sent on schedule though the server serves one at a time...
    assert max(r["sent_s"] - r["intended_s"] for r, _ in pairs) < 0.1
    # ...so latency from the intended send time grows along the queue.
    e2el = sorted(r["e2el_ms"] for r in data["requests"])
    assert e2el[-1] > 4 * e2el[0]


def test_stall_and_timeout_are_counted_errors_not_hangs(restkv_bin, tmp_path, fake):
    srv = fake(ttft=0.05, mode="stall")
    proc, data, elapsed = run_bench(restkv_bin, tmp_path, srv.address, "-n", 3, "--output-len", 4,
                                    "--stall-timeout", 1, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert data["summary"]["errors"] == {"stall": 3}
    assert all(r["chunks"] == 1 and r["ttft_ms"] is not None for r in data["requests"])
    assert elapsed < 20
    slow = fake(ttft=0.05, itl=0.5)
    proc, data, elapsed = run_bench(restkv_bin, tmp_path, slow.address, "-n", 2, "--output-len", 50,
                                    "--request-timeout", 1.5, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert data["summary"]["errors"] == {"timeout": 2}
    assert elapsed < 20


def test_status_codes_and_absent_server_are_counted(restkv_bin, tmp_path, fake):
    srv = fake(mode="status", code="RESOURCE_EXHAUSTED")
    proc, data, _ = run_bench(restkv_bin, tmp_path, srv.address, "-n", 3)
    assert proc.returncode == 0, proc.stderr
    assert data["summary"]["errors"] == {"grpc_RESOURCE_EXHAUSTED": 3}
    # Nothing listening (with --model, so no set-up call): UNAVAILABLE, quickly.
    proc, data, elapsed = run_bench(restkv_bin, tmp_path, "127.0.0.1:9", "-n", 2, "--model", "x")
    assert proc.returncode == 0, proc.stderr
    s = data["summary"]
    assert s["errors"] == {"grpc_UNAVAILABLE": 2} and s["num_requests"] == s["completed"] + s["failed"]
    assert elapsed < 30
    # Without --model the set-up call fails with a clear message.
    proc, _, _ = run_bench(restkv_bin, tmp_path, "127.0.0.1:9", "-n", 1, "--connect-timeout", 1)
    assert proc.returncode == 1 and "ListModels on 127.0.0.1:9 failed" in proc.stderr
    proc, _, _ = run_bench(restkv_bin, tmp_path, "nohostport", "-n", 1)
    assert proc.returncode == 1 and "expected host:port" in proc.stderr
