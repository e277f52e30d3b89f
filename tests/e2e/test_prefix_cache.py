"""Automatic prefix caching over HTTP with the official openai client: a request that
repeats an earlier prompt's start reports the tokens it found cached
(usage.prompt_tokens_details.cached_tokens, in the final streamed usage too), gives the
same greedy text as a server started with --no-prefix-caching, and /metrics counts the
lookups and hits; requests with an evicting kv_policy reuse the prefix, never enter their
compressed pages but leave copies of their uncompressed prompt blocks cached, and the pages
all come back."""
import os

import pytest

from serve_process import ServeProcess

openai = pytest.importorskip("openai")

MODEL = "smollm"
SYSTEM = "You are a careful assistant. Notes: " + " ".join(f"fact {i} is {i * 7 % 13}"
                                                             for i in range(80))


def start(restkv_bin, model_path, tmp_path_factory, *extra):
    binary = os.environ.get("RESTKV_BIN") or restkv_bin
    return ServeProcess(binary, model_path, tmp_path_factory.mktemp("serve") / "serve.log",
                        args=["--served-model-name", MODEL, "--threads", "2", "--grpc-port", "0",
                              "--kv-cache-memory", "64MiB", *extra])


@pytest.fixture(scope="module")
def cached(restkv_bin, model_path, tmp_path_factory):
    s = start(restkv_bin, model_path, tmp_path_factory)
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(scope="module")
def uncached(restkv_bin, model_path, tmp_path_factory):
    s = start(restkv_bin, model_path, tmp_path_factory, "--no-prefix-caching")
    yield s
    assert s.stop() == 0, s.log()


def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", timeout=120)


def chat(server, question, **extra):
    return client(server).chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": SYSTEM},
                               {"role": "user", "content": question}],
        max_tokens=8, temperature=0, extra_body=extra)


def test_shared_system_prompt_is_reused_and_text_is_unchanged(cached, uncached):
    first = chat(cached, "What is fact 3?")
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    second = chat(cached, "What is fact 5?")
    hit = second.usage.prompt_tokens_details.cached_tokens
    assert 0 < hit < second.usage.prompt_tokens and hit % 16 == 0, second.usage
    # The system prompt (and the template around it) is most of the prompt.
    assert hit >= 0.8 * second.usage.prompt_tokens, second.usage
    for question in ("What is fact 3?", "What is fact 5?"):
        want = chat(uncached, question)
        assert want.usage.prompt_tokens_details.cached_tokens == 0
        got = chat(cached, question)
        assert got.choices[0].message.content == want.choices[0].message.content
        assert got.usage.prompt_tokens_details.cached_tokens > 0
    m = cached.metrics()
    assert m["restkv:prefix_cache_hits_total"] >= 3 * hit
    assert m["restkv:prefix_cache_queries_total"] > m["restkv:prefix_cache_hits_total"]
    assert m["restkv:prefix_cache_blocks"] > 0
    assert m["restkv:kv_pages_used"] == 0
    u = uncached.metrics()
    assert u["restkv:prefix_cache_hits_total"] == 0 and u["restkv:prefix_cache_blocks"] == 0


def test_streamed_final_usage_and_completions(cached):
    chat(cached, "Warm the cache.")
    stream = client(cached).chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": SYSTEM},
                               {"role": "user", "content": "Streamed question."}],
        max_tokens=4, temperature=0, stream=True, stream_options={"include_usage": True})
    usage = [c.usage for c in stream if c.usage is not None]
    assert len(usage) == 1 and usage[0].prompt_tokens_details.cached_tokens > 0
    c = client(cached).completions
    a = c.create(model=MODEL, prompt=SYSTEM + " Q: one", max_tokens=2, temperature=0)
    b = c.create(model=MODEL, prompt=SYSTEM + " Q: two", max_tokens=2, temperature=0)
    assert b.usage.prompt_tokens_details.cached_tokens > 0
    assert a.usage.prompt_tokens_details.cached_tokens >= 0


def test_evicting_requests_reuse_the_prefix_and_leave_their_prompt_cached(cached, uncached):
    chat(cached, "Warm the cache again.")
    blocks = cached.metrics()["restkv:prefix_cache_blocks"]
    for question in ("Evicting one?", "Evicting two?"):
        got = chat(cached, question, kv_policy="snapkv", kv_budget=64)
        want = chat(uncached, question, kv_policy="snapkv", kv_budget=64)
        assert got.choices[0].message.content == want.choices[0].message.content
        assert got.usage.prompt_tokens_details.cached_tokens > 0
        assert got.usage.kv_tokens_kept == want.usage.kv_tokens_kept
    # Each evicting prefill staged copies of its uncompressed full blocks (the
    # ones after the cached prefix) and published them; its compressed pages
    # were not entered.
    assert cached.metrics()["restkv:prefix_cache_blocks"] > blocks
    # So a full-cache request with the same prompt finds all of it but the
    # block of its last token, and its text is unchanged.
    full = chat(cached, "Evicting two?")
    n = full.usage.prompt_tokens
    assert full.usage.prompt_tokens_details.cached_tokens == (n - 1) // 16 * 16, full.usage
    assert full.choices[0].message.content == chat(uncached, "Evicting two?").choices[0].message.content
    assert cached.metrics()["restkv:kv_pages_used"] == 0
