"""Structured outputs end to end: the official `openai` client (and raw HTTP, and gRPC)
against `restkv serve` on the default model. Every constrained output is checked by an
independent implementation: Python's `json` + `jsonschema`, `re`, or the choice list."""
import concurrent.futures
import json
import pathlib
import random
import re
import sys

import jsonschema
import openai
import pydantic
import pytest
import requests

from serve_process import ServeProcess, free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = "smollm"
sys.path.insert(0, str(ROOT / "tests" / "structured"))
from schema_gen import random_schema  # noqa: E402

PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 30},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "city": {"enum": ["Paris", "London", "Tokyo"]}},
    "required": ["name", "age", "city"], "additionalProperties": False}
CHAT = [{"role": "user", "content": "Describe a person as JSON with name, age and city."}]


class Server(ServeProcess):
    def __init__(self, binary, model, log_path):
        self.grpc_port = free_port()
        super().__init__(binary, model, log_path, args=[
            "--grpc-port", str(self.grpc_port), "--served-model-name", MODEL, "--threads", "2",
            "--kv-cache-memory", "512MiB"])

    def client(self):
        return openai.OpenAI(base_url=self.url + "/v1", api_key="none", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def server(restkv_bin, model_path, tmp_path_factory):
    s = Server(restkv_bin, model_path, tmp_path_factory.mktemp("serve_structured") / "serve.log")
    yield s
    assert s.stop() == 0, s.log()


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def valid(schema, text):
    jsonschema.validate(json.loads(text), schema)
    return True


class Person(pydantic.BaseModel):
    name: str
    age: int
    city: str


def test_pydantic_parse(client):
    parse = getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse
    r = parse(model=MODEL, messages=CHAT, response_format=Person, max_tokens=120, temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason == "stop", choice
    assert isinstance(choice.message.parsed, Person)
    Person.model_validate_json(choice.message.content)


def test_json_schema_sampled_n_choices(client):
    r = client.chat.completions.create(
        model=MODEL, messages=CHAT, max_tokens=150, temperature=1.0, n=4, seed=7,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "person", "schema": PERSON, "strict": True}})
    assert len(r.choices) == 4
    for c in r.choices:
        assert c.finish_reason == "stop", c
        assert valid(PERSON, c.message.content)
        # The grammar writes the properties in the schema's order, as given
        # (name, age, city), not sorted.
        assert list(json.loads(c.message.content)) == ["name", "age", "city"]


def test_json_schema_streaming(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=CHAT, max_tokens=150, temperature=0.8, seed=3, stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}})
    text, finish = "", None
    for chunk in stream:
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert finish == "stop"
    assert valid(PERSON, text)


def test_json_object(client):
    r = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=200, temperature=1.0,
                                       n=3, seed=11, response_format={"type": "json_object"})
    for c in r.choices:
        if c.finish_reason == "stop":
            assert isinstance(json.loads(c.message.content), dict)
        else:
            assert c.finish_reason == "length"


def test_vllm_guided_fields_on_completions(client):
    rx = r"\d{3}-[A-Z]{2}"
    r = client.completions.create(model=MODEL, prompt="A code:", max_tokens=20, temperature=1.0,
                                  n=3, seed=1, extra_body={"guided_regex": rx})
    for c in r.choices:
        assert c.finish_reason == "stop" and re.fullmatch(rx, c.text), c
    choices = ["positive", "negative", "neutral"]
    r = client.completions.create(model=MODEL, prompt="Sentiment of 'I love it':", max_tokens=10,
                                  temperature=1.0, n=4, seed=2, extra_body={"guided_choice": choices})
    assert all(c.text in choices and c.finish_reason == "stop" for c in r.choices), r.choices
    grammar = 'root ::= "The answer is " [0-9]+ "."'
    r = client.completions.create(model=MODEL, prompt="2+2?", max_tokens=20, temperature=0,
                                  extra_body={"guided_grammar": grammar})
    assert re.fullmatch(r"The answer is [0-9]+\.", r.choices[0].text), r.choices[0].text
    r = client.completions.create(model=MODEL, prompt="Person:", max_tokens=150, temperature=0.5,
                                  seed=4, extra_body={"guided_json": PERSON})
    assert valid(PERSON, r.choices[0].text)
    r = client.completions.create(model=MODEL, prompt="Yes or no?", max_tokens=5, temperature=0,
                                  extra_body={"structured_outputs": {"choice": ["yes", "no"]}})
    assert r.choices[0].text in ("yes", "no")


def test_guided_json_streaming_completion(client):
    stream = client.completions.create(model=MODEL, prompt="Person:", max_tokens=150, temperature=0.7,
                                       seed=5, stream=True, extra_body={"guided_json": PERSON})
    text, finish = "", None
    for chunk in stream:
        text += chunk.choices[0].text
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "stop" and valid(PERSON, text)


def test_max_tokens_cut_reports_length(client):
    r = client.chat.completions.create(
        model=MODEL, messages=CHAT, max_tokens=5, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}})
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5


def test_with_kv_policy(client):
    r = client.chat.completions.create(
        model=MODEL, messages=CHAT, max_tokens=150, temperature=0.9, seed=8,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
        extra_body={"kv_policy": "snapkv", "kv_budget": 16})
    assert r.choices[0].finish_reason == "stop" and valid(PERSON, r.choices[0].message.content)


def test_batch_invariance(client):
    """The same greedy constrained request alone and among 7 others gives the same text."""
    def one(prompt):
        return client.completions.create(model=MODEL, prompt=prompt, max_tokens=120, temperature=0,
                                         extra_body={"guided_json": PERSON}).choices[0].text
    alone = one("Person:")
    prompts = ["Person:"] + [f"Another person number {i}:" for i in range(7)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        batched = list(pool.map(one, prompts))
    assert batched[0] == alone
    for text in batched:
        assert valid(PERSON, text)


def test_generated_schemas_sampled_by_the_model(client):
    """Seeded random schemas, the real model sampling at temperature 1.0 with two seeds
    each: every output that ends with `stop` parses and validates with jsonschema."""
    rng = random.Random(77)
    schemas = [random_schema(rng) for _ in range(40)]

    def run(i):
        r = client.completions.create(model=MODEL, prompt="JSON:", max_tokens=160, temperature=1.0,
                                      n=2, seed=i, extra_body={"guided_json": schemas[i]})
        return [(i, c.finish_reason, c.text) for c in r.choices]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outputs = [o for batch in pool.map(run, range(len(schemas))) for o in batch]
    stopped = [o for o in outputs if o[1] == "stop"]
    assert len(stopped) >= 0.7 * len(outputs), f"{len(stopped)} of {len(outputs)} ended with stop"
    for i, _, text in stopped:
        try:
            jsonschema.validate(json.loads(text), schemas[i])
        except (json.JSONDecodeError, jsonschema.ValidationError) as e:
            pytest.fail(f"schema {json.dumps(schemas[i])}\noutput {text!r}\n{e}")


@pytest.mark.parametrize("body, param, words", [
    ({"guided_json": {"type": "object", "patternProperties": {}}}, "guided_json", "patternProperties"),
    ({"guided_regex": "(a"}, "guided_regex", "missing ')'"),
    ({"guided_grammar": "root ::= nothing"}, "guided_grammar", "'nothing' is used but not defined"),
    ({"guided_json": "{not json"}, "guided_json", "invalid JSON"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "array", "uniqueItems": True}}}}, "response_format.json_schema.schema", "uniqueItems"),
    ({"guided_regex": "a", "guided_choice": ["b"]}, "guided_choice", "only one"),
])
def test_invalid_constraints_are_400(server, body, param, words):
    r = requests.post(server.url + "/v1/completions",
                      json={"model": MODEL, "prompt": "x", "max_tokens": 4, **body}, timeout=60)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and words in err["message"], err


# --- gRPC ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def grpc_api(server, tmp_path_factory):
    grpc = pytest.importorskip("grpc")
    grpc_tools = pytest.importorskip("grpc_tools")
    from grpc_tools import protoc
    out = tmp_path_factory.mktemp("structured_stubs")
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}",
                      f"--grpc_python_out={out}", str(ROOT / "proto" / "restkv/v1/generation.proto")])
    assert rc == 0
    sys.path.insert(0, str(out))
    from restkv.v1 import generation_pb2, generation_pb2_grpc
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield grpc, generation_pb2, generation_pb2_grpc.GenerationStub(channel)
    channel.close()
    sys.path.remove(str(out))


def test_grpc_structured(grpc_api):
    grpc, pb, stub = grpc_api
    req = pb.GenerateRequest(model=MODEL, text="Person:", max_tokens=150, temperature=0.6, seed=3,
                             json_schema=json.dumps(PERSON))
    msgs = list(stub.Generate(req, timeout=300))
    assert msgs[-1].finished and msgs[-1].finish_reason == "stop"
    assert valid(PERSON, "".join(m.text for m in msgs))
    req = pb.GenerateRequest(text="Pick:", max_tokens=8, temperature=1.0, seed=1,
                             choice=pb.ChoiceList(choices=["left", "right"]))
    assert "".join(m.text for m in stub.Generate(req, timeout=60)) in ("left", "right")
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Generate(pb.GenerateRequest(text="x", regex="(unclosed"), timeout=60))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "missing ')'" in e.value.details()
