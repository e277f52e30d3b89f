"""The step-time budget (--max-step-ms) seen from a real client: a short streaming
request sent while a ~3k-token prompt prefills gets all its tokens before the long
prompt's first one (with the fixed token budget alone, --max-step-ms 0, each of its
tokens waits for a whole 2048-token prefill step, so it cannot), both answers are the
ones the same requests get one at a time, and /metrics has the step histograms."""
import concurrent.futures
import os
import re
import subprocess
import time

import pytest
import requests

from serve_process import ServeProcess

openai = pytest.importorskip("openai")

MODEL = "smollm"
LONG_PROMPT = "Here is a list of fruit: " + ", ".join(
    ["apple", "pear", "plum", "fig", "kiwi", "lime"] * 250) + ". The first fruit was"
SHORT_PROMPT = "Once upon a time"
SHORT_TOKENS = 16


def start(restkv_bin, model_path, tmp_path_factory, *extra):
    binary = os.environ.get("RESTKV_BIN") or restkv_bin
    return ServeProcess(binary, model_path, tmp_path_factory.mktemp("serve") / "serve.log",
                        args=["--served-model-name", MODEL, "--threads", "2", "--grpc-port", "0",
                              "--kv-cache-memory", "128MiB", "--no-prefix-caching", *extra])


def stream(server, prompt, max_tokens, t0):
    """(text, seconds from t0 to the first token, seconds from t0 to the last)."""
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", timeout=300,
                           max_retries=0)
    text, first, last = "", None, None
    for chunk in client.completions.create(model=MODEL, prompt=prompt, max_tokens=max_tokens,
                                           temperature=0, stream=True):
        if chunk.choices and chunk.choices[0].text:
            now = time.monotonic() - t0
            first = now if first is None else first
            last = now
            text += chunk.choices[0].text
    return text, first, last


def metric(text, name):
    m = re.search(rf"^{re.escape(name)}{{[^}}]*}} ([0-9.e+-]+)$", text, re.M)
    assert m, f"{name} missing from /metrics"
    return float(m.group(1))


def run_mixed(server):
    """Starts the long prompt, then (once it is prefilling) the short one."""
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        long_f = pool.submit(stream, server, LONG_PROMPT, 4, t0)
        deadline = time.time() + 60
        # The long prompt is admitted (running) before the short one is sent.
        while time.time() < deadline:
            if metric(requests.get(server.url + "/metrics", timeout=10).text,
                      "restkv:num_requests_running") >= 1:
                break
            time.sleep(0.05)
        short_f = pool.submit(stream, server, SHORT_PROMPT, SHORT_TOKENS, t0)
        return long_f.result(), short_f.result()


@pytest.fixture(scope="module")
def budget(restkv_bin, model_path, tmp_path_factory):
    s = start(restkv_bin, model_path, tmp_path_factory, "--max-step-ms", "60")
    yield s
    assert s.stop() == 0, s.log()


def test_short_stream_finishes_while_a_long_prompt_prefills(budget):
    alone_long = stream(budget, LONG_PROMPT, 4, time.monotonic())[0]
    alone_short = stream(budget, SHORT_PROMPT, SHORT_TOKENS, time.monotonic())[0]
    (long_text, long_first, _), (short_text, _, short_last) = run_mixed(budget)
    # Sharing steps changes no token (greedy, same kernels per row).
    assert long_text == alone_long
    assert short_text == alone_short
    assert short_last < long_first, (short_last, long_first)

    m = requests.get(budget.url + "/metrics", timeout=10).text
    assert metric(m, "restkv:step_duration_seconds_count") > SHORT_TOKENS
    assert metric(m, "restkv:step_prefill_token_layers_sum") > 0
    assert metric(m, "restkv:step_decode_tokens_sum") >= 2 * SHORT_TOKENS
    assert metric(m, "restkv:num_requests_running") == 0


def test_without_a_time_budget_the_short_stream_waits(restkv_bin, model_path, tmp_path_factory):
    # The control: the ordering above is the budget's doing, not the prompts'.
    s = start(restkv_bin, model_path, tmp_path_factory, "--max-step-ms", "0")
    try:
        (_, long_first, _), (short_text, _, short_last) = run_mixed(s)
        assert short_text
        assert short_last > long_first, (short_last, long_first)
    finally:
        assert s.stop() == 0, s.log()


@pytest.mark.parametrize("value", ["-2", "abc"])
def test_bad_max_step_ms_is_a_cli_error(restkv_bin, model_path, value):
    binary = os.environ.get("RESTKV_BIN") or restkv_bin
    r = subprocess.run([binary, "serve", "--model", model_path, "--max-step-ms", value],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "--max-step-ms" in r.stderr + r.stdout
