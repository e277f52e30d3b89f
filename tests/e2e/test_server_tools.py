"""Tool calling and chat templates end to end: the official `openai` client against
`restkv serve` on the default model (SmolLM2, whose own template does not render tools:
tool_choice required/named still hold its output to a call)."""
import json
import pathlib
import subprocess

import openai
import pydantic
import pytest
import requests

from serve_process import ServeProcess, free_port

MODEL = "smollm"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 20},
        "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a timezone.",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string", "maxLength": 20}},
                   "required": ["tz"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris? Use the tool."}]


class Server(ServeProcess):
    def __init__(self, binary, model, log_path, extra=()):
        grpc_port = [] if "--grpc-port" in extra else ["--grpc-port", "0"]
        super().__init__(binary, model, log_path, args=[
            "--served-model-name", MODEL, "--threads", "2", *grpc_port,
            "--kv-cache-memory", "256MiB", *extra])

    def client(self):
        return openai.OpenAI(base_url=self.url + "/v1", api_key="none", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def server(restkv_bin, model_path, tmp_path_factory):
    s = Server(restkv_bin, model_path, tmp_path_factory.mktemp("serve_tools") / "serve.log")
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def check_call(call, names=("get_weather", "get_time")):
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name in names
    args = json.loads(call.function.arguments)
    assert isinstance(args, dict)
    return args


def test_required_always_gives_a_valid_call(client):
    # One call a reply: its strings are at most 20 characters, so it always fits
    # in max_tokens. Sampled at temperature 1, a parallel array may go on adding
    # calls until the budget ends, and that reply rightly finishes with "length"
    # (a seed did, once the CPU kernels' arithmetic changed); the parallel array
    # is covered at temperature 0 below.
    for seed in range(4):
        r = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, TIME],
                                           tool_choice="required", max_tokens=120, seed=seed,
                                           temperature=1.0, parallel_tool_calls=False)
        choice = r.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        assert len(choice.message.tool_calls) == 1, choice.message
        for call in choice.message.tool_calls:
            args = check_call(call)
            if call.function.name == "get_weather":
                assert set(args) == {"city", "unit"} and args["unit"] in ("celsius", "fahrenheit")


def test_named_tool_and_no_parallel(client):
    r = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER, TIME], max_tokens=100, parallel_tool_calls=False,
        temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_time"}})
    calls = r.choices[0].message.tool_calls
    assert len(calls) == 1 and calls[0].function.name == "get_time"
    assert "tz" in check_call(calls[0])
    assert r.choices[0].message.content is None


def test_tool_round_trip(client):
    first = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER],
                                           tool_choice="required", max_tokens=100, temperature=0)
    call = first.choices[0].message.tool_calls[0]
    history = ASK + [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id,
                      "content": json.dumps({"temperature_c": 21, "sky": "clear"})}]
    second = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER],
                                            max_tokens=30, temperature=0)
    assert second.choices[0].finish_reason in ("stop", "length")
    assert second.choices[0].message.content
    assert not second.choices[0].message.tool_calls


def reassemble(stream):
    """The streamed tool calls put together as a client does, the number of argument
    pieces each came in, and the finish reason."""
    calls, finish = {}, None
    for chunk in stream:
        for c in chunk.choices:
            for d in c.delta.tool_calls or []:
                entry = calls.setdefault(d.index, {"id": None, "name": "", "arguments": "",
                                                   "pieces": 0})
                if d.id:
                    entry["id"] = d.id
                if d.function and d.function.name:
                    entry["name"] += d.function.name
                if d.function and d.function.arguments:
                    entry["arguments"] += d.function.arguments
                    entry["pieces"] += 1
            finish = c.finish_reason or finish
    return calls, finish


def test_streaming_deltas_reassemble(client):
    stream = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, TIME],
                                            tool_choice="required", max_tokens=120, stream=True,
                                            temperature=0)
    calls, finish = reassemble(stream)
    assert finish == "tool_calls"
    assert calls
    for entry in calls.values():
        assert entry["id"].startswith("call_") and entry["name"] in ("get_weather", "get_time")
        assert isinstance(json.loads(entry["arguments"]), dict)
        # The arguments stream as the model writes them, not in one piece at the end.
        assert entry["pieces"] > 1, entry
    # The same calls as the answer unstreamed.
    whole = client.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, TIME],
                                           tool_choice="required", max_tokens=120, temperature=0)
    got = [(e["name"], json.loads(e["arguments"])) for _, e in sorted(calls.items())]
    want = [(c.function.name, json.loads(c.function.arguments))
            for c in whole.choices[0].message.tool_calls]
    assert got == want


def test_arguments_keep_the_tools_property_order(client):
    # Properties listed out of name order: the grammar, and so the model, writes them in
    # the order the tool gives (as vLLM), not sorted.
    tool = {"type": "function", "function": {"name": "book", "parameters": {
        "type": "object", "properties": {"zone": {"enum": ["north", "south"]},
                                         "city": {"type": "string", "maxLength": 12}},
        "required": ["zone", "city"]}}}
    stream = client.chat.completions.create(model=MODEL, messages=ASK, tools=[tool],
                                            tool_choice="required", max_tokens=80, stream=True,
                                            temperature=0)
    calls, finish = reassemble(stream)
    assert finish == "tool_calls", calls
    for entry in calls.values():
        assert list(json.loads(entry["arguments"])) == ["zone", "city"], entry


def test_streamed_named_call_streams_its_arguments(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], max_tokens=100, stream=True, temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    pieces, heads, finish = [], [], None
    for chunk in stream:
        for c in chunk.choices:
            for d in c.delta.tool_calls or []:
                if d.id:
                    heads.append((d.id, d.function.name))
                if d.function and d.function.arguments:
                    pieces.append(d.function.arguments)
            finish = c.finish_reason or finish
    assert finish == "tool_calls"
    assert len(heads) == 1 and heads[0][1] == "get_weather"
    assert len(pieces) > 1  # the arguments arrived as they were generated
    assert json.loads("".join(pieces))["city"]


class GetWeather(pydantic.BaseModel):
    city: str
    unit: str


def test_parse_with_pydantic_tool(client):
    r = client.chat.completions.parse(model=MODEL, messages=ASK, max_tokens=120, temperature=0,
                                      tools=[openai.pydantic_function_tool(GetWeather)],
                                      tool_choice="required")
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "GetWeather"
    assert isinstance(call.function.parsed_arguments, GetWeather)


def test_auto_without_call_is_plain_content(client):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi."}],
                                       tools=[WEATHER], max_tokens=8, temperature=0)
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")


def test_legacy_functions(client):
    r = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=100, temperature=0,
                                       functions=[WEATHER["function"]],
                                       function_call={"name": "get_weather"})
    assert r.choices[0].finish_reason == "function_call"
    assert r.choices[0].message.function_call.name == "get_weather"
    json.loads(r.choices[0].message.function_call.arguments)


@pytest.mark.parametrize("body,param,words", [
    ({"tools": [{"type": "function"}]}, "tools[0].function", "function"),
    ({"tools": [{"type": "retrieval", "function": {"name": "x"}}]}, "tools[0].type", "function"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice", "nope"),
    ({"tool_choice": "required"}, "tool_choice", "tools"),
    ({"tools": [WEATHER], "tool_choice": "always"}, "tool_choice", "always"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "42"}]},
     "messages[1].tool_call_id", "tool_call_id"),
    ({"messages": [{"role": "user", "content": "x"},
                   {"role": "assistant", "content": None, "tool_calls": [
                       {"id": "c1", "type": "function",
                        "function": {"name": "f", "arguments": "not json"}}]}]},
     "messages[1].tool_calls[0].function.arguments", "JSON"),
    ({"continue_final_message": True}, "continue_final_message", "add_generation_prompt"),
    ({"chat_template_kwargs": [1]}, "chat_template_kwargs", "object"),
])
def test_bad_tool_inputs_are_400(server, body, param, words):
    payload = {"model": MODEL, "messages": ASK, "max_tokens": 4, **body}
    r = requests.post(server.url + "/v1/chat/completions", json=payload, timeout=60)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param, err
    assert words in err["message"], err
    # The server stays up.
    assert requests.get(server.url + "/health", timeout=10).status_code == 200


def test_continue_final_message(server):
    payload = {"model": MODEL, "max_tokens": 1, "add_generation_prompt": False,
               "continue_final_message": True,
               "messages": [{"role": "user", "content": "Name a colour."},
                            {"role": "assistant", "content": "The colour is"}]}
    r = requests.post(server.url + "/tokenize", json={"model": MODEL, "messages": payload["messages"],
                                                      "add_generation_prompt": False}, timeout=60)
    full = r.json()["count"]
    r = requests.post(server.url + "/v1/chat/completions", json=payload, timeout=60)
    assert r.status_code == 200, r.text
    # The prompt stops right after the assistant's text: <|im_end|>\n is not in it.
    assert r.json()["usage"]["prompt_tokens"] == full - 2


def test_chat_template_kwargs_reach_the_template(restkv_bin, model_path, tmp_path):
    tmpl = tmp_path / "t.jinja"
    tmpl.write_text("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
                    "{% endfor %}{% if tools %}<|im_start|>system\nTOOLS {{ tools | map(attribute='function.name') | join(',') }}<|im_end|>\n{% endif %}"
                    "<|im_start|>assistant\n{{ prefix | default('') }}")
    s = Server(restkv_bin, model_path, tmp_path / "serve.log", extra=["--chat-template", str(tmpl)])
    try:
        base = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        plain = requests.post(s.url + "/v1/chat/completions", json=base, timeout=60).json()
        more = requests.post(s.url + "/v1/chat/completions", timeout=60, json={
            **base, "chat_template_kwargs": {"prefix": "Sure, here is a long answer:"}}).json()
        tools = requests.post(s.url + "/v1/chat/completions", timeout=60,
                              json={**base, "tools": [WEATHER, TIME]}).json()
        n = plain["usage"]["prompt_tokens"]
        assert more["usage"]["prompt_tokens"] > n
        assert tools["usage"]["prompt_tokens"] > n
    finally:
        assert s.stop() == 0, s.log()


def test_bad_chat_template_file_fails_start_up(restkv_bin, model_path, tmp_path):
    tmpl = tmp_path / "bad.jinja"
    tmpl.write_text("line one\n{% if %}")
    p = subprocess.run([restkv_bin, "serve", "--model", model_path, "--port", "0",
                        "--grpc-port", "0", "--chat-template", str(tmpl)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "--chat-template" in p.stderr + p.stdout and "line 2" in p.stderr + p.stdout


def test_grpc_tool_call(restkv_bin, model_path, tmp_path):
    grpc = pytest.importorskip("grpc")
    grpc_tools = pytest.importorskip("grpc_tools")
    from grpc_tools import protoc
    import sys
    root = pathlib.Path(__file__).resolve().parents[2]
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    assert protoc.main(["protoc", f"-I{root / 'proto'}", f"-I{include}", f"--python_out={tmp_path}",
                        f"--grpc_python_out={tmp_path}",
                        str(root / "proto" / "restkv/v1/generation.proto")]) == 0
    sys.path.insert(0, str(tmp_path))
    try:
        from restkv.v1 import generation_pb2 as pb, generation_pb2_grpc as pbg
        port = free_port()
        s = Server(restkv_bin, model_path, tmp_path / "serve.log", extra=["--grpc-port", str(port)])
        try:
            stub = pbg.GenerationStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
            req = pb.GenerateRequest(
                chat=pb.ChatMessages(messages=[pb.ChatMessage(role="user", content=ASK[0]["content"])]),
                tools_json=json.dumps([WEATHER]), tool_choice="get_weather", max_tokens=100,
                temperature=0)
            last = list(stub.Generate(req, timeout=120))[-1]
            assert last.finished and last.finish_reason == "tool_calls"
            calls = json.loads(last.tool_calls_json)
            assert calls[0]["function"]["name"] == "get_weather"
            assert isinstance(json.loads(calls[0]["function"]["arguments"]), dict)
            # A tool message without its call id is INVALID_ARGUMENT naming the field.
            bad = pb.GenerateRequest(chat=pb.ChatMessages(messages=[
                pb.ChatMessage(role="user", content="x"), pb.ChatMessage(role="tool", content="1")]))
            with pytest.raises(grpc.RpcError) as e:
                list(stub.Generate(bad, timeout=60))
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "tool_call_id" in e.value.details()
        finally:
            assert s.stop() == 0, s.log()
    finally:
        sys.path.remove(str(tmp_path))
