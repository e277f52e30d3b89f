"""tools/eval-plot on hand-made result files (no model needed)."""
import importlib.machinery
import importlib.util
import json
import math
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "eval-plot"


def load_eval_plot():
    loader = importlib.machinery.SourceFileLoader("eval_plot", str(SCRIPT))
    spec = importlib.util.spec_from_loader("eval_plot", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def case(policy, label, segment, nll, tokens, kept):
    return {"policy": policy, "label": label, "segment": segment, "nll_sum": nll,
            "scored_tokens": tokens, "kept_fraction": kept}


def test_ppl_pools_segments_by_summed_nll():
    cases = [case("full", "full", 0, 100.0, 50, 1.0), case("full", "full", 1, 200.0, 50, 1.0),
             case("snapkv", "snapkv@0.1", 0, 120.0, 50, 0.10),
             case("snapkv", "snapkv@0.1", 1, 230.0, 50, 0.12)]
    pooled = load_eval_plot().pool_ppl(cases)
    assert set(pooled) == {("full", "full"), ("snapkv", "snapkv@0.1")}
    assert math.isclose(pooled[("full", "full")][1], math.exp(300.0 / 100))
    kept, ppl = pooled[("snapkv", "snapkv@0.1")]
    assert math.isclose(kept, 0.11) and math.isclose(ppl, math.exp(350.0 / 100))


def test_ppl_plot_is_written(tmp_path):
    doc = {"command": "ppl", "config": {}, "cases": [
        case("full", "full", 0, 100.0, 50, 1.0),
        case("restkv", "restkv@0.1", 0, 110.0, 50, 0.1),
        case("restkv", "restkv@0.5", 0, 104.0, 50, 0.5)]}
    result = tmp_path / "ppl.json"
    result.write_text(json.dumps(doc))
    proc = subprocess.run([sys.executable, str(SCRIPT), str(result), "--out", str(tmp_path / "p")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p" / "ppl.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
