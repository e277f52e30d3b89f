"""Hostile and malformed input against a real `restkv serve`: each case failed
before the fix that it names, and must be answered with a clear error while the
server stays up.

- HEAD gets headers only (a body would be read as the next pipelined response);
- a NUL byte or trailing bytes after the JSON value is a 400;
- a transfer coding other than chunked is a 501;
- control characters from the client never reach the log raw (log injection);
- `priority` is refused unless the server runs --scheduling-policy priority;
- n x max_tokens is bounded per request (--max-tokens-per-request).
"""
import json
import re
import socket
import subprocess

import openai
import pytest
import requests

from serve_process import ServeProcess

MODEL = "smollm"


def raw_exchange(port, data, read_until_closed=True, timeout=20):
    """Sends raw bytes, returns every byte the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)


@pytest.fixture(scope="module")
def server(restkv_bin, model_path, tmp_path_factory):
    s = ServeProcess(restkv_bin, model_path, tmp_path_factory.mktemp("hostile") / "serve.log",
                     args=["--grpc-port", "0", "--served-model-name", MODEL, "--threads", "2",
                           "--kv-cache-memory", "256MiB", "--max-model-len", "2048",
                           "--max-tokens-per-request", "4096"])
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_head_has_no_body_and_pipelining_stays_in_sync(server):
    data = (b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    reply = raw_exchange(server.port, data)
    # Split by hand: a HEAD response's Content-Length describes a body that is not sent.
    first, rest = reply.split(b"\r\n\r\n", 1)
    assert first.startswith(b"HTTP/1.1 200"), reply
    second, rest = rest.split(b"\r\n\r\n", 1)
    assert second.startswith(b"HTTP/1.1 405"), reply  # POST-only route: still no body
    assert rest.startswith(b"HTTP/1.1 200"), reply
    head, body = rest.split(b"\r\n\r\n", 1)
    assert json.loads(body)["version"], reply


@pytest.mark.parametrize("body", [
    b'{"model": "smollm", "prompt": "hi", "max_tokens": 1}\x00garbage',
    b'{"model": "smollm", "prompt": "hi", "max_tokens": 1} trailing',
    b'{"model": "smollm", "prompt": "hi", "max_tokens": 1}{"prompt": "again"}',
])
def test_bytes_after_the_json_value_are_a_400(server, body):
    r = requests.post(server.url + "/v1/completions", data=body,
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert "invalid JSON" in err["message"] or "NUL" in err["message"], err


def test_unsupported_transfer_coding_is_501(server):
    body = b'{"prompt": "hi", "max_tokens": 1}'
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    data = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunk)
    reply = raw_exchange(server.port, data)
    assert reply.startswith(b"HTTP/1.1 501"), reply
    assert b"gzip" in reply
    # Plain chunked still works.
    data = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunk)
    assert raw_exchange(server.port, data).startswith(b"HTTP/1.1 200")


def test_client_strings_cannot_forge_log_lines(server):
    forged = "x\n2099-01-01T00:00:00.000Z cmpl-forged POST /v1/admin 200 n=1\x1b[2J"
    r = requests.post(server.url + "/v1/completions",
                      json={"model": forged, "prompt": "hi", "max_tokens": 1}, timeout=30)
    assert r.status_code == 404, r.text
    requests.get(server.url + "/health", timeout=10)  # the log line is written by then
    log = server.log()
    assert "cmpl-forged" in log  # the value was logged ...
    for line in log.splitlines():  # ... but never at the start of a line of its own
        assert not line.startswith("2099-01-01"), line
        assert "\x1b" not in line, line
    assert re.search(r"x\\n2099-01-01T00:00:00\.000Z cmpl-forged", log), log[-2000:]


def test_priority_needs_the_priority_scheduling_policy(server, client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="hi", max_tokens=1,
                                  extra_body={"priority": -10})
    assert e.value.body["param"] == "priority"
    assert "--scheduling-policy priority" in e.value.body["message"]
    # priority 0 is the default and always allowed.
    client.completions.create(model=MODEL, prompt="hi", max_tokens=1, extra_body={"priority": 0})


def test_priority_is_honoured_with_the_flag(restkv_bin, model_path, tmp_path):
    s = ServeProcess(restkv_bin, model_path, tmp_path / "serve.log",
                     args=["--grpc-port", "0", "--threads", "2", "--kv-cache-memory", "128MiB",
                           "--scheduling-policy", "priority"])
    try:
        r = requests.post(s.url + "/v1/completions",
                          json={"prompt": "hi", "max_tokens": 1, "priority": -10}, timeout=30)
        assert r.status_code == 200, r.text
    finally:
        assert s.stop() == 0, s.log()
    # A bad value is a command-line error: no server starts.
    p = subprocess.run([restkv_bin, "serve", "--model", model_path, "--scheduling-policy", "lifo"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "--scheduling-policy" in p.stderr, p.stderr


def test_total_generation_budget_per_request(server, client):
    # Chat without max_tokens may use the rest of the context: 8 choices x ~2000
    # tokens of a 2048-token context > 4096, refused at once, naming n.
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, n=8,
                                       messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["param"] == "n", e.value.body
    assert "4096" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="hi", n=4, max_tokens=1500)
    assert e.value.body["param"] == "max_tokens", e.value.body
    # Within the budget it runs.
    r = client.completions.create(model=MODEL, prompt="hi", n=2, max_tokens=2, temperature=0)
    assert len(r.choices) == 2
