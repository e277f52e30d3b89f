"""`restkv generate` and `restkv info` driven as a user would, on the default model."""
import json
import subprocess


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kw)


def test_capital_of_france_greedy(restkv_bin, model_path):
    r = run([restkv_bin, "generate", "--model", model_path, "--prompt", "The capital of France is",
             "--temperature", "0", "--max-tokens", "12"])
    assert r.returncode == 0, r.stderr
    assert "Paris" in r.stdout
    assert "tokens/s" in r.stderr


def test_json_output_fields_and_input_order(restkv_bin, model_path, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The capital of France is\nOne, two, three,\n")
    r = run([restkv_bin, "generate", "--model", model_path, "--prompts-file", str(prompts),
             "--temperature", "0", "--max-tokens", "8", "--json"])
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["index"] for o in lines] == [0, 1]
    for o in lines:
        for key in ("text", "prompt_tokens", "completion_tokens", "finish_reason", "ttft_ms",
                    "total_ms", "kv_pages_peak"):
            assert key in o
        assert o["finish_reason"] in ("stop", "length")
        assert 1 <= o["completion_tokens"] <= 8
    assert "Paris" in lines[0]["text"]


def test_seed_reproducible_and_stop_string(restkv_bin, model_path):
    base = [restkv_bin, "generate", "--model", model_path, "--prompt", "Once upon a time",
            "--max-tokens", "24", "--json"]
    sampled = base + ["--temperature", "1.0"]
    a = json.loads(run(sampled + ["--seed", "7"]).stdout)
    b = json.loads(run(sampled + ["--seed", "7"]).stdout)
    c = json.loads(run(sampled + ["--seed", "8"]).stdout)
    assert a["text"] == b["text"]
    assert a["text"] != c["text"]
    greedy = json.loads(run(base + ["--temperature", "0"]).stdout)
    words = greedy["text"].split()
    assert len(words) > 3
    stop = words[2]
    stopped = json.loads(run(base + ["--temperature", "0", "--stop", stop]).stdout)
    assert stop not in stopped["text"]
    assert stopped["finish_reason"] == "stop"
    assert greedy["text"].startswith(stopped["text"])


def test_chat_mode_answers(restkv_bin, model_path):
    r = run([restkv_bin, "generate", "--model", model_path, "--chat", "--prompt",
             "What is the capital of France? Answer in one sentence.", "--temperature", "0",
             "--max-tokens", "32", "--json"])
    assert r.returncode == 0, r.stderr
    o = json.loads(r.stdout)
    assert "Paris" in o["text"]
    assert o["finish_reason"] == "stop"  # ends its turn with <|im_end|>


def test_info(restkv_bin, model_path):
    r = run([restkv_bin, "info", "--model", model_path, "--json"])
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["architecture"] == "llama"
    assert info["layers"] == 30
    assert info["kv_heads"] == 3
    assert info["chat_format"] == "chatml"
    assert info["context_length"] == 8192


def test_bad_inputs_give_clear_errors(restkv_bin, model_path, tmp_path):
    missing = run([restkv_bin, "generate", "--model", str(tmp_path / "nope.gguf"), "--prompt", "x"])
    assert missing.returncode != 0 and "nope.gguf" in missing.stderr
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 20)
    bad = run([restkv_bin, "info", "--model", str(garbage)])
    assert bad.returncode != 0 and "garbage.gguf" in bad.stderr
    no_prompt = run([restkv_bin, "generate", "--model", model_path])
    assert no_prompt.returncode != 0 and "--prompt" in no_prompt.stderr
    bad_temp = run([restkv_bin, "generate", "--model", model_path, "--prompt", "x", "--temperature", "-1"])
    assert bad_temp.returncode != 0 and "temperature" in bad_temp.stderr
    bad_mem = run([restkv_bin, "generate", "--model", model_path, "--prompt", "x", "--kv-cache-memory", "lots"])
    assert bad_mem.returncode != 0 and "lots" in bad_mem.stderr
    tiny = run([restkv_bin, "generate", "--model", model_path, "--prompt", "hello " * 50,
                "--kv-cache-memory", "64KiB", "--max-tokens", "4"])
    assert tiny.returncode != 0 and "KV cache" in tiny.stderr


def test_plan_counts_requests_that_fit(restkv_bin):
    r = run([restkv_bin, "plan", "--model", "llama3-8b", "--kv-cache-memory", "60GiB", "--kv-dtype",
             "bf16", "--context", "131072", "--kv-policy", "restkv", "--kv-budget", "2048", "--json"])
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    # 128k tokens x 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 bytes = 16 GiB per full request.
    assert plan["full"]["bytes_after_prefill"] == 16 << 30
    assert plan["fit_full"] == 3
    assert plan["fit_policy"] > 100 * plan["fit_full"] / 3
    bad = run([restkv_bin, "plan", "--model", "no-such-model"])
    assert bad.returncode != 0 and "llama3-8b" in bad.stderr
