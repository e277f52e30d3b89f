"""Structured outputs checked by an independent implementation: seeded random JSON
Schemas, regexes and choice lists are sampled through restkv's token-mask engine over
the default model's real vocabulary (build/tools/structured_sample: random allowed
tokens, no model compute), and every complete output must validate with Python's
`jsonschema` / match with Python's `re` / be one of the choices."""
import json
import pathlib
import random
import re
import subprocess

import jsonschema
import pytest

from schema_gen import random_schema

ROOT = pathlib.Path(__file__).resolve().parents[2]
NUM_SCHEMAS = 300
SAMPLES = 3


@pytest.fixture(scope="module")
def sampler(model_path):
    path = ROOT / "build" / "tools" / "structured_sample"
    if not path.exists():
        pytest.fail(f"{path} is missing: build the structured_sample target")

    def run(specs, max_tokens=400):
        stdin = "".join(json.dumps(s) + "\n" for s in specs)
        out = subprocess.run([str(path), "--model", model_path, "--max-tokens", str(max_tokens)],
                             input=stdin, capture_output=True, text=True, timeout=1200)
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines()]
    return run


def test_random_json_schemas_validate_with_jsonschema(sampler):
    rng = random.Random(1234)
    schemas = [random_schema(rng) for _ in range(NUM_SCHEMAS)]
    specs = [{"kind": "json_schema", "text": json.dumps(s), "samples": SAMPLES, "seed": i}
             for i, s in enumerate(schemas)]
    results = sampler(specs)
    errors = [r for r in results if "error" in r]
    assert not errors, errors[:3]
    complete = [r for r in results if r["complete"]]
    assert len(results) == NUM_SCHEMAS * SAMPLES
    # The random walk may run out of tokens inside a long string; most finish.
    assert len(complete) >= 0.9 * len(results), f"{len(complete)} of {len(results)} complete"
    for r in complete:
        schema = schemas[r["id"]]
        try:
            value = json.loads(r["text"])
        except json.JSONDecodeError as e:
            pytest.fail(f"schema {json.dumps(schema)}\noutput {r['text']!r}\nis not JSON: {e}")
        try:
            jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator,
                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        except jsonschema.ValidationError as e:
            pytest.fail(f"schema {json.dumps(schema)}\noutput {r['text']!r}\n{e.message}")


def test_json_object_outputs_are_objects(sampler):
    results = sampler([{"kind": "json_object", "samples": 40, "seed": 3}])
    complete = [r for r in results if r["complete"]]
    assert len(complete) >= 30
    for r in complete:
        assert isinstance(json.loads(r["text"]), dict), r["text"]


REGEXES = [
    r"[a-z]+@[a-z]+\.(com|org)", r"\d{1,3}(\.\d{1,3}){3}", r"(ab|cd)*e?", r"[^a-c\n]{3}x",
    r"\(\d{3}\) \d{3}-\d{4}", r"(?:0|[1-9]\d*)(\.\d+)?", r"[A-Z]{2}\d{2}[ -]?[a-f0-9]{4}",
    r"(true|false|null)", r"\w+\s\w+", r"é+ü?", r"[\u4e00-\u4e05]{2}", r"a{2,}b{,2}",
    r"(cat|dog|bird)s? (sat|ran)", r"#[0-9a-fA-F]{6}", r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}",
]


def test_regex_outputs_match_python_re(sampler):
    specs = [{"kind": "regex", "text": rx, "samples": 20, "seed": i} for i, rx in enumerate(REGEXES)]
    results = sampler(specs, max_tokens=200)
    assert not [r for r in results if "error" in r]
    complete = [r for r in results if r["complete"]]
    assert len(complete) >= 0.9 * len(results)
    for r in complete:
        assert re.fullmatch(REGEXES[r["id"]], r["text"]), (REGEXES[r["id"]], r["text"])


def test_choice_outputs_are_in_the_list(sampler):
    choices = ["positive", "negative", "neutral", "pos", "日本語", "a\"b"]
    results = sampler([{"kind": "choice", "choices": choices, "samples": 60, "seed": 9}])
    assert all(r["complete"] and r["text"] in choices for r in results), results
    assert len({r["text"] for r in results}) >= 4, "a random walk reaches most choices"


def test_gbnf_grammar_outputs_match_an_equivalent_regex(sampler):
    grammar = r'''root ::= item ("," ws item){0,3}
item ::= [a-z]+ | num
num ::= "-"? [0-9]{1,4}
ws ::= " "?
'''
    results = sampler([{"kind": "grammar", "text": grammar, "samples": 40, "seed": 5}], max_tokens=60)
    equivalent = r"([a-z]+|-?[0-9]{1,4})(, ?([a-z]+|-?[0-9]{1,4})){0,3}"
    complete = [r for r in results if r["complete"]]
    assert len(complete) >= 30
    for r in complete:
        assert re.fullmatch(equivalent, r["text"]), r["text"]


def test_invalid_specs_report_errors(sampler):
    results = sampler([
        {"kind": "json_schema", "text": '{"type": "object", "patternProperties": {}}'},
        {"kind": "regex", "text": "(a"},
        {"kind": "grammar", "text": "root ::= undefined-rule"},
    ])
    assert "patternProperties" in results[0]["error"]
    assert "missing ')'" in results[1]["error"]
    assert "undefined-rule" in results[2]["error"]
