"""Helpers shared by the `restkv bench` end-to-end tests (HTTP and gRPC, fake and real
servers)."""
import json
import time


def pair_with_server(data, srv):
    """(bench record, fake timing) pairs, matched in send/arrival order; fake times made
    relative to the run's start (both sides read CLOCK_MONOTONIC)."""
    t0 = data["start_monotonic_s"]
    reqs = sorted(data["requests"], key=lambda r: r["sent_s"])
    timings = sorted(srv.timings, key=lambda t: t["recv"])
    assert len(reqs) == len(timings)
    rel = [{"recv": t["recv"] - t0, "chunks": [c - t0 for c in t["chunks"]],
            "done": None if t["done"] is None else t["done"] - t0} for t in timings]
    return list(zip(reqs, rel))


def fake_lateness(pairs, ttft, itl):
    """How far behind its injected schedule the fake itself ran (s): the time from the
    intended send to its accepting the request, plus its worst chunk lateness. A CPU-starved
    machine makes this large; the client cannot be blamed for it."""
    late = 0.0
    for r, t in pairs:
        accept = t["recv"] - r["intended_s"]
        chunk = max((c - (t["recv"] + ttft + i * itl) for i, c in enumerate(t["chunks"])), default=0)
        late = max(late, accept + chunk)
    return late


def read_lines(path, want, timeout=10):
    deadline = time.time() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        lines = [json.loads(l) for l in text.splitlines() if l.strip()]
        if len(lines) >= want or time.time() > deadline:
            return lines
        time.sleep(0.1)
