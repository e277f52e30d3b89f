"""Soak load against one running `restkv serve`, shared by tools/soak
(long runs) and tests/e2e/test_soak.py (the ~2 minute CI run).

Concurrent workers send completions and chats, streaming and not, over HTTP (the
official `openai` client) and gRPC (grpcio), each with a KV policy and budget drawn
from POLICIES; about 20 % of streams are cut mid-way by the client, some clients read
slowly. A thread polls GET /health throughout. The result counts requests, cut
streams, preemptions (from /metrics), failures (anything but a clean finish or our own
cut) and, once the server is idle again, leaked KV pages and requests still queued;
plus the /health latency percentiles and whether a greedy request gave the same text
before and after the load. Loopback only: the caller passes the server's URLs."""
import dataclasses
import pathlib
import random
import sys
import threading
import time
import urllib.request

import openai

# (kv_policy, kv_budget): every policy, several budgets.
POLICIES = [("full", 0), ("streamingllm", 32), ("streamingllm", 128), ("snapkv", 32),
            ("snapkv", 128), ("tova", 64), ("h2o", 64), ("pyramidkv", 64), ("restkv", 32),
            ("restkv", 128)]
WORDS = ("the of and a to in is you that it he was for on are as with his they at be this "
         "from have or by one had not but what all were when we there can an your which their "
         "said if do will each about how up out them then she many some so these would other "
         "into has more her two like him see time could no make than first been its who now "
         "people my made over did down only way find use may water long little very after "
         "words called just where most know").split()
GREEDY_PROMPT = "The history of the city begins with"
ROOT = pathlib.Path(__file__).resolve().parents[1]
# Small enough that concurrent requests preempt each other on the default model,
# large enough that every request of `Load.one` fits alone: ~364 tokens in
# 8 MiB at the default 16-bit KV dtype (22.5 KiB a token).
SERVE_ARGS = ["--threads", "2", "--kv-cache-memory", "8MiB", "--max-queue", "256"]


def grpc_api(grpc_port, out_dir):
    """(generation_pb2, GenerationStub) from proto/ compiled with grpcio-tools into
    `out_dir`, or None when grpcio or grpcio-tools is missing."""
    try:
        import grpc
        import grpc_tools
        from grpc_tools import protoc
    except ImportError:
        return None
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out_dir}",
                      f"--grpc_python_out={out_dir}", str(ROOT / "proto/restkv/v1/generation.proto")])
    if rc != 0:
        raise RuntimeError("protoc failed on proto/restkv/v1/generation.proto")
    sys.path.insert(0, str(out_dir))
    from restkv.v1 import generation_pb2, generation_pb2_grpc
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    return generation_pb2, generation_pb2_grpc.GenerationStub(channel)


@dataclasses.dataclass
class SoakResult:
    requests: int = 0
    completed: int = 0
    cancellations: int = 0  # streams cut by the client on purpose
    preemptions: int = 0
    failures: list = dataclasses.field(default_factory=list)
    leaked_pages: float = 0
    waiting_after: float = 0
    running_after: float = 0
    health_checks: int = 0
    health_errors: int = 0
    health_p50_ms: float = 0
    health_p99_ms: float = 0
    health_max_ms: float = 0
    greedy_before: str = ""
    greedy_after: str = ""
    wall_s: float = 0

    def summary(self):
        return (f"requests {self.requests}  completed {self.completed}  cancellations "
                f"{self.cancellations}  preemptions {self.preemptions}  failures "
                f"{len(self.failures)}  leaked pages {self.leaked_pages:g}  waiting after "
                f"{self.waiting_after:g}  health p50 {self.health_p50_ms:.1f} ms  p99 "
                f"{self.health_p99_ms:.1f} ms  max {self.health_max_ms:.1f} ms "
                f"({self.health_checks} checks, {self.health_errors} errors)  greedy same "
                f"{self.greedy_before == self.greedy_after}  wall {self.wall_s:.0f} s")


def read_metrics(url):
    """/metrics as {name: value}, labels dropped (one model per server)."""
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name.split("{")[0]] = float(value)
    return values


class HealthPoller(threading.Thread):
    """GET /health every `interval` s; keeps each latency (ms), errors as counts."""

    def __init__(self, url, interval=0.05):
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.latencies, self.errors = [], 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    r.read()
                    ok = r.status == 200
            except Exception:
                ok = False
            self.latencies.append((time.perf_counter() - start) * 1000)
            self.errors += not ok
            self.stopping.wait(self.interval)

    def stop(self):
        self.stopping.set()
        self.join()


def percentile(values, q):
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    """One server's clients. `grpc_api` is (generation_pb2, stub) or None (HTTP only)."""

    def __init__(self, url, model, api_key=None, grpc_api=None, grpc_metadata=()):
        self.url, self.model = url, model
        self.client = openai.OpenAI(base_url=url + "/v1", api_key=api_key or "unused",
                                    max_retries=0, timeout=300)
        self.grpc_api, self.grpc_metadata = grpc_api, tuple(grpc_metadata)

    def greedy(self):
        r = self.client.completions.create(model=self.model, prompt=GREEDY_PROMPT, max_tokens=24,
                                           temperature=0)
        return r.choices[0].text

    def one(self, rng):
        """Sends one random request; returns "ok", "cut" or raises on a failure."""
        policy, budget = rng.choice(POLICIES)
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 160)))
        max_tokens = rng.randint(8, 40)
        stream = rng.random() < 0.6
        cut_after = rng.randint(1, max(1, max_tokens // 2)) if stream and rng.random() < 0.2 else None
        delay = 0.03 if rng.random() < 0.15 else 0.0  # a slow reader
        transports = ["completion", "chat"] + (["grpc"] if self.grpc_api else [])
        kind = rng.choice(transports)
        extra = {"kv_policy": policy, "kv_budget": budget}
        if kind == "grpc":
            return self._grpc(words, max_tokens, policy, budget, stream, cut_after, delay)
        if kind == "chat":
            create = lambda **kw: self.client.chat.completions.create(  # noqa: E731
                messages=[{"role": "user", "content": words}], **kw)
        else:
            create = lambda **kw: self.client.completions.create(prompt=words, **kw)  # noqa: E731
        kw = dict(model=self.model, max_tokens=max_tokens, temperature=rng.choice([0, 0.8]),
                  extra_body=extra)
        if not stream:
            r = create(**kw)
            if r.choices[0].finish_reason not in ("stop", "length"):
                raise RuntimeError(f"{kind}: finish_reason {r.choices[0].finish_reason}")
            if r.usage is None or r.usage.completion_tokens < 1:
                raise RuntimeError(f"{kind}: no usage or no tokens: {r.usage}")
            return "ok"
        chunks, finish = 0, None
        s = create(stream=True, **kw)
        try:
            for chunk in s:
                chunks += 1
                if chunk.choices and chunk.choices[0].finish_reason:
                    finish = chunk.choices[0].finish_reason
                if cut_after is not None and chunks >= cut_after:
                    return "cut"
                if delay:
                    time.sleep(delay)
        finally:
            s.close()
        if finish not in ("stop", "length"):
            raise RuntimeError(f"{kind} stream ended without a finish reason ({chunks} chunks)")
        return "ok"

    def _grpc(self, words, max_tokens, policy, budget, stream, cut_after, delay):
        pb, stub = self.grpc_api
        req = pb.GenerateRequest(model=self.model, text=words, max_tokens=max_tokens,
                                 temperature=0, kv_policy=policy, kv_budget=budget)
        call = stub.Generate(req, metadata=self.grpc_metadata, timeout=300)
        msgs = 0
        try:
            for m in call:
                msgs += 1
                if m.finished:
                    if m.finish_reason not in ("stop", "length"):
                        raise RuntimeError(f"grpc: finish_reason {m.finish_reason}")
                    return "ok"
                if stream and cut_after is not None and msgs >= cut_after:
                    call.cancel()
                    return "cut"
                if delay:
                    time.sleep(delay)
        finally:
            call.cancel()
        raise RuntimeError(f"grpc: stream ended without a final message ({msgs} messages)")


def wait_idle(url, timeout=60):
    """Waits until nothing runs or waits (cut streams are noticed by the server at its
    next write); returns the last metrics read."""
    deadline = time.time() + timeout
    while True:
        m = read_metrics(url)
        if (m.get("restkv:num_requests_running", 0) == 0 and
                m.get("restkv:num_requests_waiting", 0) == 0 and
                m.get("restkv:kv_pages_used", 0) == 0) or time.time() > deadline:
            return m
        time.sleep(0.2)


def run(load, requests, duration_s, concurrency=6, seed=0, log=None):
    """Sends up to `requests` requests from `concurrency` workers, none started after
    `duration_s`; returns a SoakResult."""
    result = SoakResult()
    started = time.time()
    result.greedy_before = load.greedy()
    before = read_metrics(load.url)
    poller = HealthPoller(load.url)
    poller.start()
    lock = threading.Lock()
    next_index = [0]
    deadline = started + duration_s

    def worker(wid):
        rng = random.Random(seed * 1000 + wid)
        while True:
            with lock:
                if next_index[0] >= requests or time.time() > deadline:
                    return
                index = next_index[0]
                next_index[0] += 1
                result.requests += 1
            try:
                outcome = load.one(rng)
            except Exception as e:  # every failure is reported, none stops the soak
                with lock:
                    result.failures.append(f"request {index}: {type(e).__name__}: {e}")
                continue
            with lock:
                if outcome == "cut":
                    result.cancellations += 1
                else:
                    result.completed += 1
                if log and result.requests % 500 == 0:
                    log(f"{result.requests} requests, {time.time() - started:.0f} s")

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = wait_idle(load.url)
    result.greedy_after = load.greedy()
    poller.stop()
    result.preemptions = int(after.get("restkv:num_preemptions_total", 0) -
                             before.get("restkv:num_preemptions_total", 0))
    result.leaked_pages = after.get("restkv:kv_pages_used", 0)
    result.waiting_after = after.get("restkv:num_requests_waiting", 0)
    result.running_after = after.get("restkv:num_requests_running", 0)
    result.health_checks = len(poller.latencies)
    result.health_errors = poller.errors
    result.health_p50_ms = percentile(poller.latencies, 0.50)
    result.health_p99_ms = percentile(poller.latencies, 0.99)
    result.health_max_ms = max(poller.latencies, default=0.0)
    result.wall_s = time.time() - started
    return result
