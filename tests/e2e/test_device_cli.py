"""--device / --gpu-memory-utilization / --random-weights.

On a machine without a GPU (CI) the CUDA cases check the clear error and skip
the comparisons; on a GPU machine they compare CUDA against the CPU backend."""
import json
import subprocess

import pytest


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)


def generate(restkv_bin, model_path, device, prompt, extra=(), max_tokens=24):
    return run([restkv_bin, "generate", "--model", model_path, "--device", device, "--prompt", prompt,
                "--temperature", "0", "--max-tokens", str(max_tokens), "--json", *extra])


@pytest.fixture(scope="module")
def cuda_available(restkv_bin, model_path):
    r = generate(restkv_bin, model_path, "cuda", "Hi", max_tokens=1)
    if r.returncode != 0:
        assert "CUDA" in r.stderr, r.stderr  # a clear reason, not a crash
        return False
    return True


def test_bad_device_flags_are_clear_errors(restkv_bin, model_path):
    r = generate(restkv_bin, model_path, "tpu", "Hi")
    assert r.returncode != 0
    assert "--device" in r.stderr
    r = generate(restkv_bin, model_path, "cpu", "Hi", ["--gpu-memory-utilization", "1.5"])
    assert r.returncode != 0
    assert "gpu-memory-utilization" in r.stderr


def test_cpu_device_is_the_default_behaviour(restkv_bin, model_path):
    r = generate(restkv_bin, model_path, "cpu", "The capital of France is")
    assert r.returncode == 0, r.stderr
    assert "Paris" in json.loads(r.stdout)["text"]


def test_random_weights_are_labelled_and_run(restkv_bin, tmp_path):
    r = run([restkv_bin, "generate", "--random-weights", "tiny", "--random-weights-dir", str(tmp_path),
             "--device", "cpu", "--prompt", "hello", "--temperature", "0", "--max-tokens", "4",
             "--ignore-eos", "--json"])
    assert r.returncode == 0, r.stderr
    assert "RANDOM WEIGHTS" in r.stderr
    assert json.loads(r.stdout)["completion_tokens"] == 4
    r = run([restkv_bin, "generate", "--random-weights", "llama9", "--prompt", "x"])
    assert r.returncode != 0
    assert "llama3-8b" in r.stderr


PROMPTS = ["The capital of France is", "One, two, three,", "def fibonacci(n):",
           "The quick brown fox"]


def test_cuda_greedy_tokens_match_cpu(restkv_bin, model_path, cuda_available):
    if not cuda_available:
        pytest.skip("no CUDA device")
    for prompt in PROMPTS:
        cpu = json.loads(generate(restkv_bin, model_path, "cpu", prompt).stdout)["text"]
        gpu = json.loads(generate(restkv_bin, model_path, "cuda", prompt).stdout)["text"]
        # bf16 weights/activations in the GPU's GEMMs may flip a late near-tie;
        # an early divergence is a bug.
        common = next((i for i, (a, b) in enumerate(zip(cpu, gpu)) if a != b), min(len(cpu), len(gpu)))
        assert common >= min(len(cpu), 40), f"{prompt!r}: cpu {cpu!r} vs cuda {gpu!r}"


def test_cuda_eviction_matches_cpu(restkv_bin, model_path, cuda_available):
    if not cuda_available:
        pytest.skip("no CUDA device")
    prompt = " ".join(f"item {i} is {i * 7 % 13}." for i in range(120)) + " So item 5 is"
    extra = ["--kv-policy", "restkv", "--kv-budget", "128"]
    cpu = generate(restkv_bin, model_path, "cpu", prompt, extra)
    gpu = generate(restkv_bin, model_path, "cuda", prompt, extra)
    assert cpu.returncode == 0 and gpu.returncode == 0, cpu.stderr + gpu.stderr
    assert json.loads(cpu.stdout)["text"][:20] == json.loads(gpu.stdout)["text"][:20]
