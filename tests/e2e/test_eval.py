"""`restkv eval` end to end on the default model: a small NIAH grid (two
lengths, three depths, full and ReST-KV at 256 with the RULER scripts'
k_min = 21) writing JSON and PNG heatmaps and resuming; `keep` returning
StreamingLLM's exact selection; `ppl` where a budget at least the context
equals the full cache exactly."""
import json
import subprocess


def run(restkv_bin, *args, timeout=900):
    r = subprocess.run([restkv_bin, "eval", *args], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r


def test_niah_grid_writes_json_and_heatmaps_and_resumes(restkv_bin, model_path, tmp_path):
    result, plots = tmp_path / "niah.json", tmp_path / "plots"
    args = ["niah", "--model", model_path, "--lengths", "512,1024", "--depths", "0,50,100",
            "--policies", "full,restkv", "--budgets", "256", "--kv-option", "restkv:kernel_size=21",
            "--result", str(result), "--plot", str(plots), "--quiet"]
    r = run(restkv_bin, *args)
    doc = json.loads(result.read_text())
    assert doc["command"] == "niah"
    assert doc["config"]["kv_cache_dtype"] == "f16"  # the CPU's default (auto)
    cases = doc["cases"]
    assert len(cases) == 12
    assert {c["label"] for c in cases} == {"full", "restkv@256"}
    assert {(c["length"], c["depth"]) for c in cases} == {(n, d) for n in (512, 1024) for d in (0, 50, 100)}
    for c in cases:
        assert c["prompt_tokens"] <= c["length"] - 16
        assert c["prompt_tokens"] > c["length"] - 60
        assert c["score"] in (0.0, 1.0)
        assert c["score"] == (1.0 if c["value"] in c["answer"] else 0.0)
        assert c["kv_tokens_kept"] == (256 if c["label"] == "restkv@256" else c["prompt_tokens"])
    full = [c["score"] for c in cases if c["label"] == "full"]
    assert sum(full) >= 5, [c["answer"] for c in cases if c["label"] == "full"]
    assert "restkv@256" in r.stdout and "mean" in r.stdout
    for name in ("niah_full.png", "niah_restkv@256.png"):
        png = (plots / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 2000
    # Resuming a finished grid computes nothing and reprints the same table.
    r2 = run(restkv_bin, *[a for a in args if a != "--quiet"], "--resume")
    assert "12 cases (12 resumed)" in r2.stderr
    assert r2.stdout.splitlines()[:5] == r.stdout.splitlines()[:5]


def test_keep_streamingllm_is_sink_plus_recent(restkv_bin, model_path):
    prompt = " ".join(f"word{i}" for i in range(150))
    r = run(restkv_bin, "keep", "--model", model_path, "--prompt", prompt, "--policies", "streamingllm",
            "--budgets", "64", "--kv-option", "sink_tokens=4")
    j = json.loads(r.stdout)
    assert j["kv_cache_dtype"] == "f16"
    n = j["num_tokens"]
    assert n > 64 and j["evicted"]
    want = list(range(4)) + list(range(n - 60, n))
    assert len(j["kept"]) == j["num_layers"] == 30
    for layer in j["kept"]:
        assert len(layer) == j["num_kv_heads"]
        assert all(head == want for head in layer)


def test_keep_rejects_two_settings(restkv_bin, model_path):
    r = subprocess.run([restkv_bin, "eval", "keep", "--model", model_path, "--prompt", "hi",
                        "--policies", "snapkv", "--budgets", "8,16"], capture_output=True, text=True)
    assert r.returncode == 1 and "one policy and one budget" in r.stderr


def test_ppl_budget_at_least_the_context_equals_full(restkv_bin, model_path, tmp_path):
    result = tmp_path / "ppl.json"
    r = run(restkv_bin, "ppl", "--model", model_path, "--context", "384", "--score", "64",
            "--policies", "full,restkv,snapkv", "--budgets", "384", "--kv-ratios", "0.25",
            "--result", str(result), "--quiet")
    cases = {c["label"]: c for c in json.loads(result.read_text())["cases"]}
    assert set(cases) == {"full", "restkv@384", "restkv@25%", "snapkv@384", "snapkv@25%"}
    assert cases["restkv@384"]["nll_sum"] == cases["full"]["nll_sum"]
    assert cases["snapkv@384"]["nll_sum"] == cases["full"]["nll_sum"]
    assert cases["restkv@25%"]["budget"] == 96
    assert cases["restkv@25%"]["kept_fraction"] == 0.25
    assert cases["restkv@25%"]["nll_sum"] != cases["full"]["nll_sum"]
    assert 1 < cases["full"]["perplexity"] < 100
    assert "vs full" in r.stdout


def test_keep_reads_token_ids_verbatim(restkv_bin, model_path, tmp_path):
    # The ids are the prompt as given: no tokeniser, no BOS (scripts/kvpress-agreement relies on it).
    ids = tmp_path / "ids.json"
    ids.write_text("[" + ", ".join(str(100 + i) for i in range(150)) + "]\n")
    r = run(restkv_bin, "keep", "--model", model_path, "--prompt-tokens-file", str(ids),
            "--policies", "streamingllm", "--budgets", "64", "--kv-option", "sink_tokens=4")
    j = json.loads(r.stdout)
    assert j["num_tokens"] == 150 and j["evicted"]
    assert j["kept"][0][0] == list(range(4)) + list(range(90, 150))
    ids.write_text("1 2 49152\n")
    bad = subprocess.run([restkv_bin, "eval", "keep", "--model", model_path, "--prompt-tokens-file", str(ids),
                          "--policies", "streamingllm", "--budgets", "64"], capture_output=True, text=True)
    assert bad.returncode == 1 and "item 2 is 49152, outside the vocabulary" in bad.stderr
    both = subprocess.run([restkv_bin, "eval", "keep", "--model", model_path, "--prompt", "hi",
                           "--prompt-tokens-file", str(ids), "--policies", "streamingllm", "--budgets", "64"],
                          capture_output=True, text=True)
    assert both.returncode == 1 and "exactly one of" in both.stderr
