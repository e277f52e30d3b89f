"""--kv-cache-dtype end to end: the server's pool, start-up log and /metrics
count pages of the chosen dtype, completions run on 16- and 8-bit pages, a
bad value is a clear error naming the flag, and `restkv info` / `restkv plan`
report bytes per dtype."""
import json
import re
import subprocess

import requests

from serve_process import ServeProcess

POOL = 64 << 20  # --kv-cache-memory 64MiB
# The default model (30 layers, 3 KV heads, head_dim 64, block 16): bytes of
# one page per dtype (kernels/kv_dtype.h): K and V rows, q8_0 f32 scales.
PAGE_BYTES = {"f32": 24576, "f16": 12288, "bf16": 12288, "q8_0": 2 * 3 * 16 * 64 + 2 * 3 * 16 * 4}


def run(cmd, timeout=300):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def metrics(url):
    values = {}
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        m = re.match(r'^(restkv:[a-z_]+)\{model_name="[^"]*"\} (\S+)$', line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return values


def completion(url):
    r = requests.post(url + "/v1/completions", json={
        "model": "m", "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0},
        timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["text"]


def test_server_pool_log_and_metrics_count_bytes_of_the_dtype(restkv_bin, model_path, tmp_path):
    seen = {}
    for dtype in ("f32", "q8_0", "auto"):
        server = ServeProcess(restkv_bin, model_path, str(tmp_path / f"{dtype}.log"), args=[
            "--grpc-port", "0", "--served-model-name", "m", "--threads", "2",
            "--kv-cache-memory", "64MiB", "--kv-cache-dtype", dtype])
        try:
            stored = "f16" if dtype == "auto" else dtype  # auto is f16 on the CPU backend
            m = metrics(server.url)
            assert m["restkv:kv_pages_total"] == POOL // PAGE_BYTES[stored]
            assert m["restkv:kv_cache_bytes_total"] == m["restkv:kv_pages_total"] * PAGE_BYTES[stored]
            assert re.search(rf"KV cache: 64.00 MiB {stored} in {POOL // PAGE_BYTES[stored]} pages",
                             server.log()), server.log()
            seen[stored] = completion(server.url)
            assert m["restkv:kv_cache_bytes_used"] == 0  # the request has finished
        finally:
            assert server.stop() == 0
    # The capital of France survives 8-bit keys and values.
    assert all("Paris" in text for text in seen.values()), seen


def test_bad_dtype_is_a_clear_error_naming_the_flag(restkv_bin, model_path):
    for cmd in (["serve", "--model", model_path, "--port", "0"],
                ["generate", "--model", model_path, "--prompt", "x"],
                ["plan", "--model", "llama3-8b"],
                ["eval", "ppl", "--model", model_path]):
        r = run([restkv_bin, *cmd, "--kv-cache-dtype", "fp8"], timeout=120)
        assert r.returncode != 0, cmd
        assert "--kv-cache-dtype" in r.stderr and "'fp8'" in r.stderr, (cmd, r.stderr)


def test_generate_runs_on_every_dtype(restkv_bin, model_path):
    texts = {}
    for dtype in ("f32", "f16", "bf16", "q8_0"):
        r = run([restkv_bin, "generate", "--model", model_path, "--prompt", "The capital of France is",
                 "--max-tokens", "8", "--temperature", "0", "--threads", "2",
                 "--kv-cache-dtype", dtype, "--json"])
        assert r.returncode == 0, r.stderr
        texts[dtype] = json.loads(r.stdout.splitlines()[0])["text"]
    assert all("Paris" in t for t in texts.values()), texts


def test_info_and_plan_report_bytes_per_dtype(restkv_bin, model_path):
    r = run([restkv_bin, "info", "--model", model_path, "--json"])
    assert r.returncode == 0, r.stderr
    per_token = json.loads(r.stdout)["kv_bytes_per_token"]
    # 30 layers x 2 (K, V) x 3 KV heads x 64 dims x element bytes (+ a 4-byte scale per row).
    assert per_token == {"f32": 46080, "f16": 23040, "bf16": 23040, "q8_0": 30 * 2 * 3 * (64 + 4)}
    r = run([restkv_bin, "plan", "--model", "llama3-8b", "--kv-cache-memory", "60GiB",
             "--context", "131072", "--kv-policy", "restkv", "--kv-budget", "2048", "--json"])
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["kv_dtype"] == "bf16"  # auto plans for the CUDA default
    by = plan["by_dtype"]
    assert by["bf16"]["fit_full"] >= 2 * by["f32"]["fit_full"]
    assert by["bf16"]["fit_policy"] >= 2 * by["f32"]["fit_policy"] - 1
    # q8_0 stores 128 + 4 bytes per row where f32 stores 512: 3.9x the pages.
    assert by["q8_0"]["fit_policy"] >= 3.8 * by["f32"]["fit_policy"]
    assert by["q8_0"]["fit_full"] >= 3 * by["f32"]["fit_full"]
