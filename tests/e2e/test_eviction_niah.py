"""Eviction during prefill on the default model: a ~2k-token needle-in-a-haystack
case (RULER's niah_single format, needle at 50 % depth) answered with the full
cache and with ReST-KV keeping 256 tokens per layer and KV head.

ReST-KV runs with k_min = 21, the setting of the release's RULER scripts (its
NIAH scripts use 5; on this 135M model k_min = 5 at B = 256 returns "730",
dropping the needle's last digit: a 7-digit answer is a run of single-digit
tokens, which only a wide smoothing kernel keeps whole; docs/results.md)."""
import json
import pathlib
import subprocess

# The file ends with a newline the prompt does not have.
PROMPT = (pathlib.Path(__file__).parent / "niah_2k_prompt.txt").read_text().rstrip("\n")
NEEDLE = "7304"


def answer(restkv_bin, model_path, *extra):
    r = subprocess.run([restkv_bin, "generate", "--model", model_path, "--prompt", PROMPT,
                        "--temperature", "0", "--max-tokens", "6", "--json", *extra],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_full_cache_finds_the_needle(restkv_bin, model_path):
    out = answer(restkv_bin, model_path, "--kv-policy", "full")
    assert out["prompt_tokens"] > 1900
    assert NEEDLE in out["text"]
    assert out["kv_tokens_evicted"] == 0


def test_restkv_at_budget_256_finds_the_needle(restkv_bin, model_path):
    out = answer(restkv_bin, model_path, "--kv-policy", "restkv", "--kv-budget", "256",
                 "--kv-option", "kernel_size=21")
    assert NEEDLE in out["text"]
    assert out["kv_tokens_kept"] == 256
    assert out["kv_tokens_evicted"] == out["prompt_tokens"] - 256
