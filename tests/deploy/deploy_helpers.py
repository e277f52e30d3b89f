"""Helpers for the deployment tests: render the chart with helm and read the
rendered objects the way the API server and the kubelet would."""
import base64
import functools
import pathlib
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "restkv"
RELEASE = "rk"
NAMESPACE = "llm"
# The values files a user installs with; "default" is values.yaml alone.
PROFILES = {
    "default": [],
    "cpu": [CHART / "values-cpu.yaml"],
    "gpu": [CHART / "values-gpu.yaml"],
}


def helm_template(helm, values_files=(), sets=(), check=True):
    cmd = [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for f in values_files:
        cmd += ["-f", str(f)]
    for s in sets:
        cmd += ["--set", s]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)


def parse_objects(text):
    return [d for d in yaml.safe_load_all(text) if d]


@functools.lru_cache(maxsize=None)
def _rendered_text(helm, values_files, sets):
    return helm_template(helm, values_files, sets).stdout


def render(helm, values_files=(), sets=()):
    """The chart's objects (fresh dicts on every call; helm runs once per input)."""
    return parse_objects(_rendered_text(helm, tuple(map(str, values_files)), tuple(sets)))


def find(objects, kind):
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def container(objects, name="restkv"):
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == name)


def container_env(objects, c):
    """The environment the kubelet gives container c: envFrom ConfigMaps, then
    env (values, ConfigMap and Secret key references), resolved from the
    rendered objects."""
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    env = {}
    for src in c.get("envFrom", []):
        cm = by_name[("ConfigMap", src["configMapRef"]["name"])]
        env.update(cm["data"])
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
            continue
        ref = e["valueFrom"]
        if "secretKeyRef" in ref:
            secret = by_name[("Secret", ref["secretKeyRef"]["name"])]
            env[e["name"]] = base64.b64decode(secret["data"][ref["secretKeyRef"]["key"]]).decode()
        elif "configMapKeyRef" in ref:
            cm = by_name[("ConfigMap", ref["configMapKeyRef"]["name"])]
            env[e["name"]] = cm["data"][ref["configMapKeyRef"]["key"]]
        else:
            raise AssertionError(f"unsupported env source {ref}")
    return env
