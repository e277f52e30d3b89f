"""vLLM's request fields and OpenAI's response fields that restkv once dropped or refused,
each shown to have its effect with the official `openai` client (vLLM's extensions go in
`extra_body`) or raw HTTP: min_tokens, include_stop_str_in_output, skip_special_tokens,
spaces_between_special_tokens, truncate_prompt_tokens, logit_bias,
stream_options.continuous_usage_stats, X-Request-Id, completion_tokens counting the end
token, stop_reason, system_fingerprint, text parts joined with "\\n", top_logprobs 0,
unknown fields logged, /v1/models/{id}, and the default max_tokens of a pool smaller
than one context."""
import json

import openai
import pytest
import requests

from serve_process import ServeProcess

MODEL = "smollm"
PROMPT = "The capital of France is"


class Server(ServeProcess):
    def __init__(self, binary, model, log_path, kv="256MiB", extra=()):
        super().__init__(binary, model, log_path, args=[
            "--served-model-name", MODEL, "--threads", "2", "--kv-cache-memory", kv, *extra])

    def client(self):
        return openai.OpenAI(base_url=self.url + "/v1", api_key="none", max_retries=0, timeout=120)

    def post(self, path, body, headers=None):
        return requests.post(self.url + path, data=json.dumps(body), headers=headers or {},
                             timeout=120)

    def token_ids(self, text):
        r = self.post("/tokenize", {"prompt": text, "add_special_tokens": False})
        assert r.status_code == 200, r.text
        return r.json()["tokens"]


@pytest.fixture(scope="module")
def server(restkv_bin, model_path, tmp_path_factory):
    s = Server(restkv_bin, model_path, tmp_path_factory.mktemp("fields") / "serve.log")
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def chat(client, content, **kw):
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}], temperature=0, **kw)


def extra(choice, name):
    return (choice.model_extra or {}).get(name)


def test_min_tokens_holds_off_the_end(client):
    base = chat(client, "Reply with the single word: yes", max_tokens=40)
    assert base.choices[0].finish_reason == "stop"
    n = base.usage.completion_tokens
    longer = chat(client, "Reply with the single word: yes", max_tokens=40,
                  extra_body={"min_tokens": n + 6})
    assert longer.usage.completion_tokens >= n + 6
    assert len(longer.choices[0].message.content) > len(base.choices[0].message.content)
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, "hi", max_tokens=2, extra_body={"min_tokens": 3})
    assert e.value.body["param"] == "min_tokens"


def test_completion_tokens_count_the_end_token_and_stop_reason_is_null_for_eos(client):
    r = chat(client, "Reply with the single word: yes", max_tokens=40, logprobs=True)
    c = r.choices[0]
    assert c.finish_reason == "stop" and extra(c, "stop_reason") is None
    # One logprob per delivered token; the EOS that ended it is counted too, as vLLM does.
    assert r.usage.completion_tokens == len(c.logprobs.content) + 1


def test_stop_string_include_stop_str_and_stop_reason(client):
    kw = dict(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=[" 6"])
    plain = client.completions.create(**kw)
    assert plain.choices[0].finish_reason == "stop"
    assert extra(plain.choices[0], "stop_reason") == " 6"
    assert not plain.choices[0].text.endswith(" 6")
    kept = client.completions.create(**kw, extra_body={"include_stop_str_in_output": True})
    assert kept.choices[0].text == plain.choices[0].text + " 6"


def test_stop_token_id_is_the_stop_reason(server, client):
    comma = server.token_ids(",")
    assert len(comma) == 1
    r = client.completions.create(model=MODEL, prompt="1, 2, 3, 4", max_tokens=12, temperature=0,
                                  extra_body={"stop_token_ids": comma})
    assert r.choices[0].finish_reason == "stop"
    assert extra(r.choices[0], "stop_reason") == comma[0]
    assert "," not in r.choices[0].text
    kept = client.completions.create(model=MODEL, prompt="1, 2, 3, 4", max_tokens=12,
                                     temperature=0, extra_body={"stop_token_ids": comma,
                                                                "include_stop_str_in_output": True})
    assert kept.choices[0].text == r.choices[0].text + ","


def test_special_tokens_rendered_with_and_without_spaces(client):
    q = "Reply with the single word: yes"
    plain = chat(client, q, max_tokens=40).choices[0].message.content
    body = {"include_stop_str_in_output": True, "skip_special_tokens": False}
    spaced = chat(client, q, max_tokens=40, extra_body=body).choices[0].message.content
    assert spaced == plain + " <|im_end|>"
    tight = chat(client, q, max_tokens=40,
                 extra_body={**body, "spaces_between_special_tokens": False})
    assert tight.choices[0].message.content == plain + "<|im_end|>"
    # skip_special_tokens alone: the EOS is not part of the text anyway.
    assert chat(client, q, max_tokens=40, extra_body={"skip_special_tokens": False}) \
        .choices[0].message.content == plain


def test_truncate_prompt_tokens_keeps_the_last_tokens(server, client):
    long_prompt = "one two three four five six seven eight nine ten " * 4
    ids = server.token_ids(long_prompt)
    r = client.completions.create(model=MODEL, prompt=long_prompt, max_tokens=4, temperature=0,
                                  extra_body={"truncate_prompt_tokens": 6})
    assert r.usage.prompt_tokens == 6
    # The same as sending the last 6 ids (BOS, if any, is cut like any other token).
    by_ids = client.completions.create(model=MODEL, prompt=ids[-6:], max_tokens=4, temperature=0)
    assert r.choices[0].text == by_ids.choices[0].text
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="x", max_tokens=1,
                                  extra_body={"truncate_prompt_tokens": 10 ** 7})
    assert e.value.body["param"] == "truncate_prompt_tokens"


def test_logit_bias_steers_and_clamps(server, client):
    greedy = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=1, temperature=0)
    first = server.token_ids(greedy.choices[0].text)
    banana = server.token_ids(" banana")
    assert len(banana) == 1
    up = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=1, temperature=0,
                                   logit_bias={str(banana[0]): 100})
    assert up.choices[0].text == " banana"
    down = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=1, temperature=0,
                                     logit_bias={str(first[0]): -100})
    assert down.choices[0].text != greedy.choices[0].text
    # Out of [-100, 100]: clamped, as vLLM does (so still accepted).
    assert client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=1, temperature=0,
                                     logit_bias={str(banana[0]): 1000}).choices[0].text == " banana"
    r = server.post("/v1/completions", {"prompt": PROMPT, "logit_bias": {"not-an-id": 1}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "logit_bias"
    r = server.post("/v1/completions", {"prompt": PROMPT, "logit_bias": {"10000000": 1}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "logit_bias"


def test_continuous_usage_stats(client):
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count to five."}], temperature=0,
        max_tokens=8, stream=True,
        stream_options={"include_usage": True, "continuous_usage_stats": True}))
    body = [c for c in chunks if c.choices]
    assert body and all(c.usage is not None for c in body)
    counts = [c.usage.completion_tokens for c in body]
    assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == chunks[-1].usage.completion_tokens
    assert all(c.usage.prompt_tokens == chunks[-1].usage.prompt_tokens for c in body)
    # Without it, only the last chunk has usage.
    plain = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count to five."}], temperature=0,
        max_tokens=8, stream=True, stream_options={"include_usage": True}))
    assert all(c.usage is None for c in plain[:-1])


def test_x_request_id_is_echoed_and_used_as_the_id(server):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    r = server.post("/v1/chat/completions", body, headers={"X-Request-Id": "my-trace-7"})
    assert r.status_code == 200
    assert r.headers["X-Request-Id"] == "my-trace-7"
    assert r.json()["id"] == "chatcmpl-my-trace-7"
    s = requests.post(server.url + "/v1/completions", json={"prompt": "a", "max_tokens": 2,
                                                             "stream": True},
                      headers={"X-Request-Id": "bad id\"x"}, stream=True, timeout=60)
    assert s.headers["X-Request-Id"] == "bad_id_x"  # sanitised
    events = [line for line in s.iter_lines() if line.startswith(b"data: {")]
    assert json.loads(events[0][6:])["id"] == "cmpl-bad_id_x"
    err = server.post("/v1/completions", {"prompt": 5}, headers={"X-Request-Id": "e1"})
    assert err.status_code == 400 and err.headers["X-Request-Id"] == "e1"
    assert "chatcmpl-my-trace-7 POST /v1/chat/completions 200" in server.log()


def test_system_fingerprint(client):
    a = chat(client, "hi", max_tokens=2)
    b = client.completions.create(model=MODEL, prompt="hi", max_tokens=2)
    assert a.system_fingerprint and a.system_fingerprint.startswith("fp_")
    assert a.system_fingerprint == b.system_fingerprint


def test_text_parts_are_joined_with_a_newline(server):
    parts = [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]
    a = server.post("/tokenize", {"messages": [{"role": "user", "content": parts}]}).json()
    b = server.post("/tokenize", {"messages": [{"role": "user", "content": "first\nsecond"}]}).json()
    assert a["tokens"] == b["tokens"]


def test_top_logprobs_zero_without_logprobs(client):
    r = chat(client, "hi", max_tokens=2, top_logprobs=0)
    assert r.choices[0].logprobs is None
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, "hi", max_tokens=2, top_logprobs=2)
    assert e.value.body["param"] == "top_logprobs"


def test_unknown_fields_are_logged_once(server, client):
    for _ in range(2):
        chat(client, "hi", max_tokens=2, extra_body={"max_token": 3, "zzz_unknown": 1})
    log = server.log()
    assert log.count("ignoring unknown request field 'zzz_unknown'") == 1, log
    assert log.count("ignoring unknown request field 'max_token'") == 1, log


def test_models_retrieve(client):
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("no-such-model")
    assert e.value.body["param"] == "model"


def test_small_pool_warns_and_defaults_max_tokens(restkv_bin, model_path, tmp_path):
    # 12 MiB of KV cannot hold one of SmolLM2's 8k-token contexts: the server says so at
    # start-up, and chat without max_tokens gets a default that fits instead of a 400.
    s = Server(restkv_bin, model_path, tmp_path / "serve.log", kv="12MiB")
    try:
        assert "WARNING: the KV cache cannot hold one request of max_model_len" in s.log()
        r = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Tell a story."}],
                                            "temperature": 0, "ignore_eos": True})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["finish_reason"] == "length"
        too_many = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                                   "max_tokens": 8000})
        # An explicit max_tokens that cannot fit the pool is still refused (kv_capacity_exceeded).
        assert too_many.status_code == 413, too_many.text
        assert too_many.json()["error"]["code"] == "kv_capacity_exceeded"
    finally:
        assert s.stop() == 0, s.log()
