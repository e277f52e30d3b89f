"""The Helm chart: lint, render with every values profile, validate every
object against the Kubernetes API schemas (strict: unknown fields fail), and
check the properties the deployment depends on (probes, drain timing, GPU
scheduling, security, autoscaler and scrape wiring)."""
import copy
import subprocess

import kubernetes_validate
import pytest
import yaml

from deploy_helpers import (CHART, NAMESPACE, PROFILES, container, find, helm_template,
                            parse_objects, render)

# The newest Kubernetes release kubernetes-validate ships schemas for, and an
# older one still in wide use (the chart's kubeVersion floor is 1.27).
K8S_VERSIONS = ["1.37.0", "1.30.0"]
# Custom resources whose CRD schemas are not in kubernetes-validate; skipped
# there on purpose and checked field by field in test_custom_resources_wiring.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("keda.sh/v1alpha1", "ScaledObject")}


@pytest.fixture(scope="module", params=sorted(PROFILES))
def profile(request, helm):
    return request.param, render(helm, PROFILES[request.param])


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_helm_lint_strict(helm, name):
    cmd = [helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    for f in PROFILES[name]:
        cmd += ["-f", str(f)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[WARNING]" not in out.stdout and "[ERROR]" not in out.stdout, out.stdout


def validate_all(objects, version):
    """kubernetes-validate --strict on every object; CRD kinds are returned
    unvalidated only when listed in CRD_KINDS, anything else unknown fails."""
    skipped = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            key = (obj["apiVersion"], obj["kind"])
            assert key in CRD_KINDS, f"no schema for {key} and not an expected CRD kind"
            skipped.append(key)
    return skipped


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_strictly(profile, version):
    name, objects = profile
    try:
        skipped = validate_all(objects, version)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{name} @ {version}: {'.'.join(map(str, e.path))}: {e.message}")
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= kinds
    if name == "default":
        assert not skipped and "PersistentVolumeClaim" in kinds
    else:
        assert ("monitoring.coreos.com", "ServiceMonitor") in {
            (a.split("/")[0], k) for a, k in skipped}


def test_validation_can_fail(helm):
    """The strict check is real: an unknown field, a wrong type and an unknown
    kind are each rejected."""
    objects = render(helm)
    bad = copy.deepcopy(objects)
    find(bad, "Deployment")["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_all(bad, K8S_VERSIONS[0])
    bad = copy.deepcopy(objects)
    find(bad, "Service")["spec"]["ports"][0]["port"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_all(bad, K8S_VERSIONS[0])
    with pytest.raises(AssertionError, match="not an expected CRD kind"):
        validate_all([{"apiVersion": "example.com/v1", "kind": "Widget",
                       "metadata": {"name": "w"}}], K8S_VERSIONS[0])


def test_probes_survive_model_load_and_drain(profile):
    _, objects = profile
    c = container(objects)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    startup, ready, live = c["startupProbe"], c["readinessProbe"], c["livenessProbe"]
    for p in (startup, ready, live):
        assert p["httpGet"]["port"] in ports
    # The port opens only after the model loads: the startup probe gives that
    # ten minutes; liveness and readiness only begin once it succeeded.
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    # Readiness reads the drain; liveness must not (a draining pod is alive).
    assert ready["httpGet"]["path"] == "/health"
    assert live["httpGet"]["path"] == "/live"
    assert live["periodSeconds"] * live["failureThreshold"] >= 60


def test_grace_period_covers_prestop_and_drain(profile):
    _, objects = profile
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    c = container(objects)
    cm = find([o for o in objects if o["metadata"]["name"].endswith("-config")], "ConfigMap")
    shutdown = float(cm["data"]["RESTKV_SHUTDOWN_TIMEOUT"])
    sleep_cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep_cmd[0] == "sleep"
    pre_stop = float(sleep_cmd[1])
    assert pre_stop >= 5
    # The server flushes for up to 2 s after the drain deadline before it exits.
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + shutdown + 5
    assert "--shutdown-timeout" in c["args"]
    strategy = find(objects, "Deployment")["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_security_context(profile):
    _, objects = profile
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts, c["name"]  # the only writable path besides the model volume


def test_gpu_profile_schedules_on_gpus(helm):
    objects = render(helm, PROFILES["gpu"])
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    c = container(objects)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in c["resources"].get("requests", {})
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"]
    assert "replicas" not in find(objects, "Deployment")["spec"]  # the autoscaler owns it
    assert find(objects, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]
    with_runtime = render(helm, PROFILES["gpu"], ["runtimeClassName=nvidia"])
    assert find(with_runtime, "Deployment")["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    # CPU profiles ask for no GPU.
    for name in ("default", "cpu"):
        limits = container(render(helm, PROFILES[name]))["resources"].get("limits", {})
        assert "nvidia.com/gpu" not in limits


def test_model_volume_and_init_container(profile):
    name, objects = profile
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    init = next(c for c in pod["initContainers"] if c["name"] == "fetch-model")
    env = {e["name"]: e["value"] for e in init["env"]}
    c = container(objects)
    model_arg = c["args"][c["args"].index("--model") + 1]
    model_mount = next(m for m in c["volumeMounts"] if m["name"] == "models")
    assert model_mount["readOnly"] is True
    assert model_arg == f'{env["MODEL_DIR"]}/{env["MODEL_FILE"]}'
    assert next(m for m in init["volumeMounts"] if m["name"] == "models")["mountPath"] == env["MODEL_DIR"]
    script = find([o for o in objects if o["metadata"]["name"].endswith("-fetch-model")], "ConfigMap")
    assert script["data"]["fetch_model.py"] == (CHART / "files" / "fetch_model.py").read_text().rstrip("\n")
    volume = next(v for v in pod["volumes"] if v["name"] == "models")
    if name == "cpu":
        assert "emptyDir" in volume
    else:
        claim = volume["persistentVolumeClaim"]["claimName"]
        assert find(objects, "PersistentVolumeClaim")["metadata"]["name"] == claim


def test_service_ports_and_app_protocol(profile):
    _, objects = profile
    svc = find(objects, "Service")
    c = container(objects)
    named = {p["name"] for p in c["ports"]}
    by_name = {p["name"]: p for p in svc["spec"]["ports"]}
    assert by_name["http"]["appProtocol"] == "http"
    assert by_name["grpc"]["appProtocol"] == "kubernetes.io/h2c"
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= named
    labels = find(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    pdb = find(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_custom_resources_wiring(helm):
    """The CRD objects refer to what the chart really renders."""
    cpu, gpu = render(helm, PROFILES["cpu"]), render(helm, PROFILES["gpu"])
    for objects in (cpu, gpu):
        svc, mon = find(objects, "Service"), find(objects, "ServiceMonitor")
        assert mon["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert {e["port"] for e in mon["spec"]["endpoints"]} <= {p["name"] for p in svc["spec"]["ports"]}
        assert mon["spec"]["endpoints"][0]["path"] == "/metrics"
    deployment = find(gpu, "Deployment")["metadata"]["name"]
    so = find(gpu, "ScaledObject")
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                           "name": deployment}
    trigger = so["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus" and float(trigger["metadata"]["threshold"]) > 0
    assert "restkv:num_requests_waiting" in trigger["metadata"]["query"]
    assert f'namespace="{NAMESPACE}"' in trigger["metadata"]["query"]
    hpa = find(cpu, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == find(cpu, "Deployment")["metadata"]["name"]
    assert ":" not in hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]


def test_config_and_secret_reach_the_server(helm):
    objects = render(helm, PROFILES["cpu"], ["apiKey.enabled=true", "apiKey.value=s3cret",
                                             "server.kvOptions=alpha=0.3"])
    c = container(objects)
    assert any(e["name"] == "RESTKV_API_KEY" for e in c["env"])
    assert "$(RESTKV_KV_OPTIONS)" in c["args"]
    assert c["args"][c["args"].index("--kv-cache-dtype") + 1] == "$(RESTKV_KV_CACHE_DTYPE)"
    cm_name = c["envFrom"][0]["configMapRef"]["name"]
    cm = find([o for o in objects if o["metadata"]["name"] == cm_name], "ConfigMap")
    assert cm["data"]["RESTKV_KV_CACHE_DTYPE"] == "auto"
    gpu = render(helm, PROFILES["gpu"])
    gpu_cm_name = container(gpu)["envFrom"][0]["configMapRef"]["name"]
    gpu_cm = find([o for o in gpu if o["metadata"]["name"] == gpu_cm_name], "ConfigMap")
    assert gpu_cm["data"]["RESTKV_KV_CACHE_DTYPE"] == "bf16"
    # Every $(VAR) in the args is defined, or the kubelet would pass it literally.
    defined = set(cm["data"]) | {e["name"] for e in c.get("env", [])}
    used = {a[2:-1] for a in c["args"] if a.startswith("$(")}
    assert used <= defined, used - defined
    # A changed flag changes the pod template, so pods roll.
    other = render(helm, PROFILES["cpu"], ["server.kvBudget=7"])
    a = find(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    b = find(other, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert a["checksum/config"] != b["checksum/config"]
    # Nothing derived from the key lands in the (widely readable) pod template.
    rotated = render(helm, PROFILES["cpu"], ["apiKey.enabled=true", "apiKey.value=other",
                                             "server.kvOptions=alpha=0.3"])
    assert find(rotated, "Deployment")["spec"]["template"] == find(objects, "Deployment")["spec"]["template"]


@pytest.mark.parametrize("sets, message", [
    (["apiKey.enabled=true"], "apiKey.value"),
    (["model.volume.type=nfs"], "model.volume.type"),
    (["autoscaling.type=vpa"], "autoscaling.type"),
    (["server.kvCacheDtype=fp8"], "server.kvCacheDtype"),
    (["model.volume.type=existingClaim"], "existingClaim"),
])
def test_bad_values_fail_with_a_clear_message(helm, sets, message):
    out = helm_template(helm, sets=sets, check=False)
    assert out.returncode != 0
    assert message in out.stderr


def test_existing_secret_is_used_not_created(helm):
    objects = render(helm, sets=["apiKey.enabled=true", "apiKey.existingSecret=mine"])
    assert not [o for o in objects if o["kind"] == "Secret"]
    ref = container(objects)["env"][0]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "mine", "key": "api-key"}


def test_adapter_rules_and_alerts_parse():
    from deploy_helpers import DEPLOY
    rules = yaml.safe_load((DEPLOY / "prometheus" / "adapter-rules.yaml").read_text())
    assert rules["rules"]["custom"][0]["name"]["as"] == "restkv_${1}"
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    names = [r["alert"] for g in alerts["groups"] for r in g["rules"]]
    assert {"RestkvQueueGrowing", "RestkvKvCacheExhausted", "RestkvHighErrorRate"} <= set(names)
    assert parse_objects  # the rendered-object parser is shared with the server test
