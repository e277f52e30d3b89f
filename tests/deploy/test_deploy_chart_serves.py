"""The chart drives a real server. The CPU profile is rendered with helm; the
Deployment's container command, args, env (ConfigMap and Secret) and probes
are read from it and `restkv serve` is started here with exactly those — the
model path swapped for the test model, the ports for free ones, the listen
address for loopback. A small kubelet polls the probes with their paths,
ports, periods, timeouts and thresholds. Then a pod deletion is played out:
a long stream is running, SIGTERM arrives, readiness must fail at once, a new
request gets 503, liveness stays up, the stream completes, and the process
exits 0 within terminationGracePeriodSeconds.

The same server first answers /metrics, against which every metric queried by
the Grafana dashboard, the alert rules and both autoscalers is checked."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests
import yaml

from deploy_helpers import DEPLOY, PROFILES, container, container_env, find, render

API_KEY = "deploy-test-key"
# The CPU profile as a user installs it, with an API key, and sized for a
# shared 2-core CI machine (the only differences from values-cpu.yaml).
TEST_SETS = ["apiKey.enabled=true", f"apiKey.value={API_KEY}", "server.threads=1",
             "server.kvCacheMemory=256MiB"]
STREAM_TOKENS = 16


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expand(arg, env):
    """The kubelet's $(VAR) expansion in command and args ($$ escapes $)."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, arg)


class Pod:
    """The rendered Deployment's container, run as a local process."""

    def __init__(self, objects, binary, model, log_path):
        self.deployment = find(objects, "Deployment")
        self.spec = self.deployment["spec"]["template"]["spec"]
        c = container(objects)
        self.container = c
        env = container_env(objects, c)
        argv = [expand(a, env) for a in c["command"] + c["args"]]
        assert not [a for a in argv if "$(" in a], f"unresolved variables in {argv}"
        container_ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.ports = {name: free_port() for name in container_ports}
        assert argv[:2] == ["restkv", "serve"]
        argv[0] = binary
        swaps = {"--model": model, "--host": "127.0.0.1",
                 "--port": str(self.ports["http"]), "--grpc-port": str(self.ports["grpc"])}
        for flag, value in swaps.items():
            i = argv.index(flag)
            if flag == "--port":
                assert argv[i + 1] == str(container_ports["http"])
            if flag == "--grpc-port":
                assert argv[i + 1] == str(container_ports["grpc"])
            argv[i + 1] = value
        self.argv = argv
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RESTKV_")}
        self.env.update(env)
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{self.ports['http']}"
        self.proc = subprocess.Popen(argv, env=self.env, stdout=open(log_path, "w"),
                                     stderr=subprocess.STDOUT)

    def log(self):
        return self.log_path.read_text()

    def probe_url(self, probe):
        port = probe["httpGet"]["port"]
        port = self.ports[port] if isinstance(port, str) else port
        return f"http://127.0.0.1:{port}{probe['httpGet']['path']}"

    def grace_seconds(self):
        return self.spec["terminationGracePeriodSeconds"]

    def pre_stop_seconds(self):
        return float(self.container["lifecycle"]["preStop"]["exec"]["command"][1])


class Kubelet(threading.Thread):
    """Probes like the kubelet: the startup probe every period until it
    succeeds (failureThreshold failures in a row kill the container), then
    readiness and liveness, each on its own period, with their thresholds;
    success is a 2xx/3xx answer within timeoutSeconds."""

    def __init__(self, pod):
        super().__init__(daemon=True)
        self.pod = pod
        c = pod.container
        self.startup, self.readiness, self.liveness = (
            c["startupProbe"], c["readinessProbe"], c["livenessProbe"])
        self.stop = threading.Event()
        self.started_at = None
        self.ready = threading.Event()      # set while the pod is in the Service's endpoints
        self.unready_at = None              # first time readiness dropped after being ready
        self.killed = None                  # "startup" or "liveness" if the kubelet would restart it
        self.results = []                   # (time, probe kind, ok)

    def check(self, kind, probe):
        try:
            code = requests.get(self.pod.probe_url(probe), timeout=probe["timeoutSeconds"]).status_code
            ok = 200 <= code < 400
        except requests.RequestException:
            ok = False
        self.results.append((time.monotonic(), kind, ok))
        return ok

    def run(self):
        failures = 0
        while not self.stop.is_set():
            if self.check("startup", self.startup):
                self.started_at = time.monotonic()
                break
            failures += 1
            if failures >= self.startup["failureThreshold"]:
                self.killed = "startup"
                return
            self.stop.wait(self.startup["periodSeconds"])
        # Readiness and liveness start together once the startup probe passed.
        due = {"readiness": time.monotonic(), "liveness": time.monotonic()}
        fails = {"readiness": 0, "liveness": 0}
        oks = {"readiness": 0}
        probes = {"readiness": self.readiness, "liveness": self.liveness}
        while not self.stop.is_set():
            kind = min(due, key=due.get)
            if self.stop.wait(max(0.0, due[kind] - time.monotonic())):
                return
            probe = probes[kind]
            ok = self.check(kind, probe)
            due[kind] = time.monotonic() + probe["periodSeconds"]
            if ok:
                fails[kind] = 0
                if kind == "readiness":
                    oks[kind] += 1
                    if oks[kind] >= probe.get("successThreshold", 1):
                        self.ready.set()
                continue
            fails[kind] += 1
            if kind == "readiness":
                oks[kind] = 0
                if fails[kind] >= probe["failureThreshold"] and self.ready.is_set():
                    self.ready.clear()
                    self.unready_at = self.unready_at or time.monotonic()
            elif fails[kind] >= probe["failureThreshold"]:
                self.killed = "liveness"
                return


@pytest.fixture(scope="module")
def pod(helm, restkv_bin, model_path, tmp_path_factory):
    objects = render(helm, PROFILES["cpu"], TEST_SETS)
    p = Pod(objects, restkv_bin, model_path, tmp_path_factory.mktemp("pod") / "restkv.log")
    p.helm = helm
    kubelet = Kubelet(p)
    kubelet.start()
    p.kubelet = kubelet
    # The kubelet's own budget is periodSeconds x failureThreshold (10 min);
    # the small model loads in seconds, so a minute is plenty here.
    if not kubelet.ready.wait(timeout=60):
        p.proc.kill()
        pytest.fail(f"not ready: killed={kubelet.killed}, probes={kubelet.results}\n{p.log()}")
    yield p
    kubelet.stop.set()
    if p.proc.poll() is None:
        p.proc.kill()
        p.proc.wait()


def auth():
    return {"Authorization": f"Bearer {API_KEY}"}


# --- metrics the observability files query -----------------------------------------------

PROMQL_WORDS = {
    # functions and keywords that appear in the queries
    "sum", "avg", "max", "min", "count", "by", "without", "on", "ignoring", "group_left",
    "group_right", "and", "or", "unless", "rate", "irate", "increase", "deriv", "avg_over_time",
    "max_over_time", "min_over_time", "histogram_quantile", "label_values", "bool", "offset",
}


def metric_names(expr):
    """Metric names a PromQL expression reads: strings, label matchers,
    grouping clauses and range selectors removed, what is left that is not
    a function, keyword or number."""
    e = re.sub(r"label_values\(([^,]+),\s*\w+\)", r"\1", expr)  # Grafana: (metric, label)
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', e)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    words = re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", e)
    return {w for w in words if w not in PROMQL_WORDS and not w.startswith("$")}


def exported(pod):
    text = requests.get(pod.url + "/metrics", timeout=10).text
    names, series = set(), []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0)
            names.add(name)
            series.append(line)
    return names, series


def dashboard_exprs():
    dash = json.loads((DEPLOY / "grafana" / "restkv.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(var["query"]["query"] if isinstance(var["query"], dict) else var["query"])
    return dash, exprs


def test_observability_queries_read_exported_metrics(pod):
    names, series = exported(pod)
    assert "restkv:num_requests_waiting" in names

    dash, exprs = dashboard_exprs()
    assert len(dash["panels"]) >= 10 and len(exprs) >= 15
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    exprs += [r["expr"] for g in alerts["groups"] for r in g["rules"]]
    scaled = [o for o in render_profile(pod, "gpu") if o["kind"] == "ScaledObject"]
    exprs += [t["metadata"]["query"] for so in scaled for t in so["spec"]["triggers"]]
    adapter = yaml.safe_load((DEPLOY / "prometheus" / "adapter-rules.yaml").read_text())
    rule = adapter["rules"]["custom"][0]
    exprs.append(rule["seriesQuery"])
    read = set()
    for expr in exprs:
        used = metric_names(expr)
        assert used, f"no metric in {expr!r}"
        assert used <= names, f"{expr!r} reads {sorted(used - names)}, not in /metrics"
        read |= used
    # The list: request rate, TTFT/TPOT/E2E, running and waiting, KV
    # pages used and released by eviction, preemptions, tokens/s.
    for needed in ["restkv:request_success_total", "restkv:time_to_first_token_seconds_bucket",
                   "restkv:time_per_output_token_seconds_bucket",
                   "restkv:e2e_request_latency_seconds_bucket", "restkv:num_requests_running",
                   "restkv:num_requests_waiting", "restkv:kv_pages_used",
                   "restkv:kv_pages_released_by_eviction_total", "restkv:num_preemptions_total",
                   "restkv:generation_tokens_total"]:
        assert needed in read, needed
    # Label values the queries filter on exist.
    assert any('finished_reason="error"' in s for s in series)
    # prometheus-adapter renames the series to the name the HPA asks for.
    hpa = find(render_profile(pod, "cpu"), "HorizontalPodAutoscaler")
    wanted = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    pattern = rule["name"]["matches"]
    renamed = {re.sub(pattern, rule["name"]["as"].replace("${1}", r"\1"), n)
               for n in names if re.match(pattern, n)}
    assert wanted in renamed and ":" not in wanted


def render_profile(pod, name):
    return render(pod.helm, PROFILES[name])


# --- a pod deletion during a stream --------------------------------------------------------

def test_sigterm_drains_like_a_pod_deletion(pod):
    kubelet = pod.kubelet
    assert kubelet.killed is None and kubelet.started_at is not None
    startup = pod.container["startupProbe"]
    t0 = kubelet.results[0][0]
    assert kubelet.started_at - t0 <= startup["periodSeconds"] * startup["failureThreshold"]

    stream = requests.post(pod.url + "/v1/chat/completions", headers=auth(), stream=True,
                           timeout=120, json={
                               "messages": [{"role": "user", "content": "Tell me a long story."}],
                               "max_tokens": STREAM_TOKENS, "temperature": 0, "stream": True,
                               "ignore_eos": True, "stream_options": {"include_usage": True}})
    assert stream.status_code == 200, stream.text
    lines = stream.iter_lines(decode_unicode=True)
    chunks = []
    for line in lines:  # wait until tokens flow: the request is running
        if line.startswith("data: {"):
            chunks.append(json.loads(line[6:]))
            if chunks[-1]["choices"] and chunks[-1]["choices"][0]["delta"].get("content"):
                break

    # preStop runs first; the server is not told and keeps serving meanwhile
    # (the sleep itself is not waited out here: it only delays SIGTERM).
    assert requests.get(pod.probe_url(pod.container["readinessProbe"]), timeout=5).status_code == 200
    t_term = time.monotonic()
    pod.proc.send_signal(signal.SIGTERM)

    # Readiness fails at once: the very next probe, whenever the kubelet sends it.
    deadline = t_term + 1.0
    while True:
        code = requests.get(pod.probe_url(pod.container["readinessProbe"]), timeout=5).status_code
        if code == 503:
            break
        assert time.monotonic() < deadline, f"readiness still {code} 1 s after SIGTERM"
        time.sleep(0.01)
    # A request that still reaches this pod is refused, not queued.
    late = requests.post(pod.url + "/v1/chat/completions", headers=auth(), timeout=30,
                         json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
    assert late.status_code == 503, late.text
    # Liveness stays up through the drain: the kubelet must not restart a draining pod.
    assert requests.get(pod.probe_url(pod.container["livenessProbe"]), timeout=5).status_code == 200

    # The stream completes.
    done = False
    for line in lines:
        if line == "data: [DONE]":
            done = True
            break
        if line.startswith("data: {"):
            chunks.append(json.loads(line[6:]))
    assert done, "stream cut before [DONE]"
    assert all("choices" in c for c in chunks), [c for c in chunks if "choices" not in c]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == STREAM_TOKENS

    # The process exits 0 before the kubelet's SIGKILL: grace period minus the preStop sleep.
    budget = pod.grace_seconds() - pod.pre_stop_seconds()
    rc = pod.proc.wait(timeout=budget)
    elapsed = time.monotonic() - t_term
    assert rc == 0, pod.log()
    assert elapsed < budget
    # The kubelet's own readiness probe saw the drain within one period, and
    # liveness never failed.
    period = pod.container["readinessProbe"]["periodSeconds"]
    timeout = pod.container["readinessProbe"]["timeoutSeconds"]
    deadline = time.monotonic() + period + timeout
    while kubelet.unready_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kubelet.unready_at is not None and kubelet.unready_at - t_term <= period + timeout
    assert kubelet.killed is None
    assert all(ok for t, kind, ok in kubelet.results if kind == "liveness" and t < t_term + elapsed)
    assert "draining" in pod.log()
