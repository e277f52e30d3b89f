"""`restkv serve` end to end: the official `openai` client and raw HTTP against a
server started on the default model (one server for the session, plus a short-lived
one for the shutdown test)."""
import concurrent.futures
import json
import os
import signal
import socket
import time

import openai
import pytest
import requests

from serve_process import ServeProcess

API_KEY = "test-key"
MODEL = "smollm"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_QUEUE = 40


class Server(ServeProcess):
    def __init__(self, binary, model, log_path, extra=()):
        super().__init__(binary, model, log_path, args=[
            "--grpc-port", "0", "--served-model-name", MODEL, "--api-key", API_KEY,
            "--threads", "2", "--kv-cache-memory", "768MiB", "--max-queue", str(MAX_QUEUE),
            "--max-body-size", "1MiB", *extra])

    def client(self):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)

    def post(self, path, body, headers=AUTH, **kw):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return requests.post(self.url + path, data=data, headers=headers, timeout=120, **kw)

    def metrics(self):
        text = requests.get(self.url + "/metrics", timeout=10).text
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def metric(self, name, **labels):
        labels = {"model_name": MODEL, **labels}
        key = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        return self.metrics()[key]


@pytest.fixture(scope="session")
def server_bin(request):
    # RESTKV_BIN points at another build's binary; the default is build/restkv.
    return os.environ.get("RESTKV_BIN") or request.getfixturevalue("restkv_bin")


@pytest.fixture(scope="session")
def server(server_bin, model_path, tmp_path_factory):
    s = Server(server_bin, model_path, tmp_path_factory.mktemp("serve") / "serve.log")
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(scope="session")
def client(server):
    return server.client()


def greedy(client, prompt, max_tokens=8, **kw):
    return client.completions.create(model=MODEL, prompt=prompt, max_tokens=max_tokens,
                                     temperature=0, **kw)


# --- the openai client -------------------------------------------------------------------

def test_models_health_version(server, client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert requests.get(server.url + "/health", timeout=10).json() == {"status": "ok"}
    assert "version" in requests.get(server.url + "/version", timeout=10).json()


def test_completion_greedy(client):
    r = greedy(client, "The capital of France is", max_tokens=8)
    assert r.object == "text_completion" and r.id.startswith("cmpl-") and r.model == MODEL
    assert "Paris" in r.choices[0].text
    assert r.choices[0].finish_reason == "length"
    usage = r.usage.model_dump()
    assert usage["completion_tokens"] == 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + 8
    assert "kv_tokens_kept" in usage and "kv_tokens_evicted" in usage


def test_chat_greedy(client):
    r = client.chat.completions.create(
        model=MODEL, temperature=0, max_tokens=32,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one sentence."}])
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant"
    assert "Paris" in r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_stream(client, include_usage):
    messages = [{"role": "user", "content": "Name a color."}]
    whole = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=6)
    kw = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, temperature=0,
                                                 max_tokens=6, stream=True, **kw))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    body = [c for c in chunks if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in body) == whole.choices[0].message.content
    assert body[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert all(c.choices[0].finish_reason is None for c in body[:-1])
    if include_usage:
        assert not chunks[-1].choices
        assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
        assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    else:
        assert all(c.usage is None for c in chunks)


def test_completion_stream_matches_whole(client):
    whole = greedy(client, "One, two, three,", max_tokens=6)
    chunks = list(client.completions.create(model=MODEL, prompt="One, two, three,", max_tokens=6,
                                            temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stop_strings(client):
    text = greedy(client, "Once upon a time", max_tokens=12).choices[0].text
    words = text.split()
    assert len(words) > 3
    stopped = greedy(client, "Once upon a time", max_tokens=12, stop=[words[2], "zzzz"])
    assert stopped.choices[0].finish_reason == "stop"
    assert words[2] not in stopped.choices[0].text
    assert text.startswith(stopped.choices[0].text)


def test_n_choices_and_seed_reproducibility(client):
    def sample(seed):
        r = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8,
                                      temperature=1.0, n=3, seed=seed)
        assert [c.index for c in r.choices] == [0, 1, 2]
        return [c.text for c in r.choices]
    a, b, c = sample(7), sample(7), sample(8)
    assert a == b
    assert a != c
    assert len(set(a)) == 3  # each choice has its own seed


def test_logprobs(client):
    r = greedy(client, "The capital of France is", max_tokens=4, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == 4 and len(lp.token_logprobs) == 4 and len(lp.text_offset) == 4
    assert all(x <= 0 for x in lp.token_logprobs)
    assert all(len(top) <= 2 for top in lp.top_logprobs)
    # Greedy: the chosen token is the most likely one.
    assert lp.token_logprobs[0] == pytest.approx(max(lp.top_logprobs[0].values()))
    assert "".join(lp.tokens) == r.choices[0].text

    chat = client.chat.completions.create(model=MODEL, temperature=0, max_tokens=3, logprobs=True,
                                          top_logprobs=2,
                                          messages=[{"role": "user", "content": "Hi"}])
    content = chat.choices[0].logprobs.content
    assert 1 <= len(content) <= 3
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 2
        assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token


def test_completion_prompt_shapes(server, client):
    tokens = server.post("/tokenize", {"prompt": "The capital of France is"}).json()["tokens"]
    by_text = greedy(client, "The capital of France is", max_tokens=4).choices[0].text
    assert greedy(client, tokens, max_tokens=4).choices[0].text == by_text
    multi = greedy(client, ["The capital of France is", tokens], max_tokens=4, echo=True)
    assert [c.index for c in multi.choices] == [0, 1]
    assert multi.choices[0].text == "The capital of France is" + by_text
    assert multi.choices[1].text == multi.choices[0].text


def test_echo_logprobs_score_the_prompt(client):
    """lm-eval-harness style loglikelihood: echo + logprobs scores every prompt token
    after the first, and a prompt token's logprob equals the logprob the same token
    gets when it is generated after the shorter prompt."""
    first = greedy(client, "The capital of France is", max_tokens=1, logprobs=1)
    gen_token = first.choices[0].logprobs.tokens[0]
    gen_logprob = first.choices[0].logprobs.token_logprobs[0]
    scored = greedy(client, "The capital of France is" + gen_token, max_tokens=1, logprobs=1,
                    echo=True)
    lp = scored.choices[0].logprobs
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    prompt_len = scored.usage.prompt_tokens
    assert all(x is not None and x <= 0 for x in lp.token_logprobs[1:prompt_len])
    assert all(len(t) == 1 for t in lp.top_logprobs[1:prompt_len])
    assert lp.tokens[prompt_len - 1] == gen_token
    assert abs(lp.token_logprobs[prompt_len - 1] - gen_logprob) < 1e-3
    # The greedy token is the top alternative at that position.
    assert list(lp.top_logprobs[prompt_len - 1]) == [gen_token]

    chunks = list(client.completions.create(model=MODEL, prompt="The capital of France is",
                                            max_tokens=2, temperature=0, logprobs=1, echo=True,
                                            stream=True))
    echo_lp = chunks[0].choices[0].logprobs
    assert chunks[0].choices[0].text == "The capital of France is"
    assert echo_lp.token_logprobs[0] is None and echo_lp.token_logprobs[1] <= 0


def test_kv_policy_extension(server, client):
    prompt = "The quick brown fox jumps over the lazy dog. " * 20
    r = client.completions.create(model=MODEL, prompt=prompt, max_tokens=4, temperature=0,
                                  extra_body={"kv_policy": "snapkv", "kv_budget": 64})
    usage = r.usage.model_dump()
    assert usage["kv_tokens_kept"] == 64
    assert usage["kv_tokens_evicted"] == usage["prompt_tokens"] - 64 > 0
    full = greedy(client, prompt, max_tokens=4).usage.model_dump()
    assert full["kv_tokens_evicted"] == 0
    assert server.metric("restkv:kv_pages_released_by_eviction_total") > 0


def test_tokenize_detokenize(server):
    t = server.post("/tokenize", {"prompt": "Hello world", "return_token_strs": True}).json()
    assert t["count"] == len(t["tokens"]) > 0 and t["max_model_len"] == 8192
    assert "".join(t["token_strs"]) == "Hello world"
    assert server.post("/detokenize", {"tokens": t["tokens"]}).json() == {"prompt": "Hello world"}
    chat = server.post("/tokenize", {"messages": [{"role": "user", "content": "Hi"}]}).json()
    assert chat["count"] > 3


# --- errors over raw HTTP ----------------------------------------------------------------

@pytest.mark.parametrize("path,body,status,param", [
    ("/v1/completions", "{not json", 400, None),
    ("/v1/completions", "[1, 2]", 400, None),
    ("/v1/completions", {"model": MODEL}, 400, "prompt"),
    ("/v1/completions", {"prompt": "x", "temperature": "hot"}, 400, "temperature"),
    ("/v1/completions", {"prompt": "x", "top_p": 0}, 400, "top_p"),
    ("/v1/completions", {"prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
    ("/v1/completions", {"prompt": "x", "n": 0}, 400, "n"),
    ("/v1/completions", {"prompt": "x", "stop": [1]}, 400, "stop[0]"),
    ("/v1/completions", {"prompt": [1, 10**9]}, 400, "prompt"),
    ("/v1/completions", {"prompt": "x", "kv_policy": "nonsense"}, 400, "kv_policy"),
    ("/v1/completions", {"prompt": "x", "stream_options": {"include_usage": True}}, 400, "stream_options"),
    ("/v1/chat/completions", {"messages": []}, 400, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, 400, "messages[0].role"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": 3}]}, 400, "messages[0].content"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2},
     400, "top_logprobs"),
    ("/v1/completions", {"model": "gpt-4", "prompt": "x"}, 404, "model"),
    ("/detokenize", {"tokens": [-1]}, 400, "tokens[0]"),
])
def test_bad_requests(server, path, body, status, param):
    r = server.post(path, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"] and error["type"]
    assert error["param"] == param


def test_prompt_longer_than_context(server):
    r = server.post("/v1/completions", {"prompt": "hello " * 9000, "max_tokens": 4})
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    n = server.post("/tokenize", {"prompt": "hello " * 9000}).json()["count"]
    assert "8192" in message and str(n) in message
    r = server.post("/v1/completions", {"prompt": "hello", "max_tokens": 8192})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"


def test_auth(server):
    body = {"prompt": "x", "max_tokens": 1}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        r = server.post("/v1/completions", body, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "invalid_api_key"
    assert requests.get(server.url + "/v1/models", timeout=10).status_code == 401
    assert requests.get(server.url + "/health", timeout=10).status_code == 200
    assert requests.get(server.url + "/metrics", timeout=10).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="nope", max_retries=0).models.list()


def test_routes_and_methods(server):
    assert requests.get(server.url + "/v1/nothing", headers=AUTH, timeout=10).status_code == 404
    assert requests.get(server.url + "/v1/completions", headers=AUTH, timeout=10).status_code == 405


def test_body_over_limit_is_413(server):
    r = server.post("/v1/completions", json.dumps({"prompt": "x" * (2 << 20)}))
    assert r.status_code == 413
    assert "error" in r.json()
    assert server.post("/v1/completions", {"prompt": "Hi", "max_tokens": 1}).status_code == 200


def test_queue_full_is_429(server):
    r = server.post("/v1/completions", {"prompt": "Hi", "max_tokens": 4, "n": MAX_QUEUE + 10})
    assert r.status_code == 429, r.text
    assert r.json()["error"]["type"] == "rate_limit_error"
    _wait_idle(server)


# --- disconnects and concurrency ---------------------------------------------------------

def _wait_idle(server, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.metric("restkv:kv_pages_used") == 0 and server.metric("restkv:num_requests_running") == 0:
            return
        time.sleep(0.05)
    pytest.fail("KV pages were not freed: " + str(server.metric("restkv:kv_pages_used")))


@pytest.mark.parametrize("stream", [True, False])
def test_dropped_connection_frees_pages(server, stream):
    _wait_idle(server)
    aborted = server.metric("restkv:request_success_total", finished_reason="abort")
    body = json.dumps({"model": MODEL, "prompt": "Once upon a time", "max_tokens": 4000,
                       "ignore_eos": True, "stream": stream})
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    sock.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
    if stream:  # mid-stream: after a few events
        received = b""
        while received.count(b"data: ") < 3:
            chunk = sock.recv(4096)
            assert chunk, "server closed the stream"
            received += chunk
    else:  # before the answer: once the request holds pages
        deadline = time.time() + 30
        while server.metric("restkv:kv_pages_used") == 0:
            assert time.time() < deadline, "the request never started"
            time.sleep(0.01)
    assert server.metric("restkv:kv_pages_used") > 0
    sock.close()
    _wait_idle(server)
    assert server.metric("restkv:request_success_total", finished_reason="abort") == aborted + 1


def test_32_concurrent_clients(server):
    subjects = ["France", "Germany", "Italy", "Spain", "Japan", "Egypt", "Canada", "Peru",
                "Kenya", "Norway", "Chile", "India", "Greece", "Poland", "Cuba", "Iran"]
    prompts = [f"The capital of {s} is" for s in subjects]
    first = server.client()
    expected = [greedy(first, p, max_tokens=5).choices[0].text for p in prompts]  # one at a time
    assert len(set(expected)) > 8

    def run(i):
        c = server.client()  # its own connection
        p = prompts[i % len(prompts)]
        if i % 2:
            return "".join(ch.choices[0].text for ch in c.completions.create(
                model=MODEL, prompt=p, max_tokens=5, temperature=0, stream=True))
        return greedy(c, p, max_tokens=5).choices[0].text

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        got = list(pool.map(run, range(32)))
    assert got == [expected[i % len(prompts)] for i in range(32)]
    _wait_idle(server)
    assert server.metric("restkv:time_to_first_token_seconds_count") >= 32


# --- graceful shutdown -------------------------------------------------------------------

def test_sigterm_drains_in_flight_requests(server_bin, model_path, tmp_path):
    s = Server(server_bin, model_path, tmp_path / "serve.log")
    c = s.client()
    # Long enough to still be running while the checks below take a few ms.
    stream = c.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=48,
                                  temperature=0, stream=True, extra_body={"ignore_eos": True})
    chunks = iter(stream)
    first = next(chunks)  # the request is running
    s.proc.send_signal(signal.SIGTERM)
    deadline = time.time() + 5
    while requests.get(s.url + "/health", timeout=10).status_code != 503:
        assert time.time() < deadline, "/health still answers 200 after SIGTERM"
        time.sleep(0.005)
    r = s.post("/v1/completions", {"prompt": "Hi", "max_tokens": 1})
    assert r.status_code == 503 and r.json()["error"]["type"] == "service_unavailable"
    rest = list(chunks)
    assert rest[-1].choices[0].finish_reason == "length"
    assert len(first.choices[0].text + "".join(ch.choices[0].text for ch in rest)) > 20
    assert s.proc.wait(timeout=60) == 0, s.log()
    assert "draining" in s.log()
