"""scripts/kvpress-agreement end to end: restkv's `eval keep` against NVIDIA
kvpress on the default model (512 tokens of Debian's GPL-3, 75 % removed, so
128 kept per layer and KV head).

Runs only where `.venv-kvpress` exists (kvpress + transformers + torch, ~6 GB:
CI does not install it; `scripts/kvpress-agreement` creates it on first use).

Floors (measured at 512 tokens: see README "Evaluating KV policies"):
- streamingllm is position only: every layer and head must agree exactly.
- snapkv is the same algorithm on both sides; only numerics differ (restkv's
  quantised kernels vs float32), and the 64-token window is forced on both
  sides, so its Jaccard has that floor plus the scored tokens' agreement.
- tova differs by at most the last token per set; numerics again.
- h2o-sum (kvpress's observed attention scored the restkv way) agrees up to
  numerics; kvpress's own h2o normalises by the number of observing queries,
  a design difference, so it only has to beat disjoint sets clearly.
"""
import json
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
VENV_PYTHON = ROOT / ".venv-kvpress" / "bin" / "python"

FLOORS = {"snapkv": 0.90, "tova": 0.90, "h2o-sum": 0.90, "h2o": 0.20}


@pytest.mark.skipif(not VENV_PYTHON.exists(),
                    reason=".venv-kvpress not installed (run scripts/kvpress-agreement once to create it; ~6 GB)")
def test_kvpress_agreement(restkv_bin, model_path, tmp_path):
    result = tmp_path / "kvpress.json"
    r = subprocess.run([str(VENV_PYTHON), str(ROOT / "scripts" / "kvpress-agreement"), "--no-install",
                        "--model", model_path, "--restkv", restkv_bin, "--tokens", "512",
                        "--compression-ratio", "0.75", "--no-precision", "--result", str(result)],
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(result.read_text())
    assert doc["num_tokens"] == 512 and doc["n_kept"] == 128
    pol = doc["policies"]
    assert set(pol) == {"streamingllm", "snapkv", "tova", "h2o", "h2o-sum"}
    for name, e in pol.items():
        assert all(len(h) == 128 for layer in e["kvpress_kept"] for h in layer), name
        assert all(len(h) == 128 for layer in e["restkv_kept"] for h in layer), name
    want = list(range(4)) + list(range(512 - 124, 512))
    assert all(h == want for layer in pol["streamingllm"]["kvpress_kept"] for h in layer)
    assert all(v == 1.0 for layer in pol["streamingllm"]["jaccard"] for v in layer)
    for name, floor in FLOORS.items():
        assert pol[name]["summary"]["mean"] >= floor, (name, pol[name]["summary"])
    # TOVA keeps one set for every KV head on both sides.
    for side in ("kvpress_kept", "restkv_kept"):
        assert all(layer[0] == layer[1] == layer[2] for layer in pol["tova"][side])
    assert "streamingllm" in r.stdout and "mean J" in r.stdout
