"""Shared fixtures for the end-to-end tests: the built binary and the model."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def restkv_bin():
    # RESTKV_BIN: another build's binary (scripts/test-sanitizers runs the
    # server tests against build-asan/restkv).
    path = pathlib.Path(os.environ.get("RESTKV_BIN") or ROOT / "build" / "restkv")
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/build first")
    return str(path)


@pytest.fixture(scope="session")
def model_path():
    path = os.environ.get("RESTKV_MODEL") or str(ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        if os.environ.get("RESTKV_REQUIRE_MODEL"):
            pytest.fail(f"model not found at {path} (run scripts/fetch-model)")
        pytest.skip(f"model not found at {path}")
    return path
