"""A two-minute soak of `restkv serve`: one server with a small KV pool
(so requests preempt each other), concurrent streaming and non-streaming completions
and chats over HTTP (openai client) and gRPC, every KV policy at several budgets,
about 20 % of streams cut by the client and some slow readers (tools/soak_load.py; the
same load runs longer as tools/soak). Bounded in count and time, loopback only."""
import os
import pathlib
import sys

import pytest

from serve_process import ServeProcess, free_port

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import soak_load  # noqa: E402

MODEL = "soak"
REQUESTS = 150
DURATION_S = 100  # no request starts later; the load ends within ~2 minutes


@pytest.fixture(scope="module")
def server(request, model_path, tmp_path_factory):
    binary = os.environ.get("RESTKV_BIN") or request.getfixturevalue("restkv_bin")
    grpc_port = free_port()
    s = ServeProcess(binary, model_path, tmp_path_factory.mktemp("soak") / "serve.log", args=[
        "--grpc-port", str(grpc_port), "--served-model-name", MODEL, *soak_load.SERVE_ARGS])
    s.grpc_port = grpc_port
    yield s
    assert s.stop() == 0, s.log()


def test_soak(server, tmp_path):
    api = soak_load.grpc_api(server.grpc_port, tmp_path)
    assert api is not None, "grpcio and grpcio-tools are test requirements"
    result = soak_load.run(soak_load.Load(server.url, MODEL, grpc_api=api), REQUESTS, DURATION_S)
    print(result.summary())
    assert result.failures == [], "\n".join(result.failures[:20]) + "\n" + server.log()[-4000:]
    # A floor, not a throughput target: the count depends on the machine
    # (108 requests on a quiet 2-core machine, 48 on one running an ASan build).
    assert result.requests >= 25, result.summary()
    assert result.cancellations >= 1, "the load was meant to cut some streams"
    assert result.preemptions >= 1, "the pool was meant to force preemptions"
    assert result.leaked_pages == 0, result.summary()
    assert result.waiting_after == 0 and result.running_after == 0, result.summary()
    assert result.health_errors == 0, result.summary()
    # p99 rather than max: on a shared 2-core machine another process can stall
    # one poll (a 509 ms outlier among 16k polls was seen in a 15-minute
    # tools/soak run with other builds running); one stall past 1 s still fails.
    assert result.health_p99_ms < 100, result.summary()
    assert result.health_max_ms < 1000, result.summary()
    assert result.greedy_after == result.greedy_before
