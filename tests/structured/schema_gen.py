"""Seeded random JSON Schemas from the subset restkv supports (docs/structured_outputs.md),
shared by tests/structured and tests/e2e/test_server_structured.py."""

NAMES = ["id", "name", "title", "count", "tags", "ok", "x", "value", "items", "meta", "é", "a b"]


def random_schema(rng, depth=0):
    """One schema from the supported subset (seeded)."""
    leaf = ["string", "integer", "number", "boolean", "null", "enum", "const", "string_len",
            "string_pattern", "int_range", "uuid", "number_range"]
    inner = ["object", "array", "anyOf"] if depth < 3 else []
    if depth == 0:
        inner.append("ref")  # "#/$defs/..." resolves against the root document
    kind = rng.choice(leaf + inner * 2)
    if kind == "string":
        return {"type": "string"}
    if kind == "integer":
        return {"type": "integer"}
    if kind == "number":
        return {"type": "number"}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "null":
        return {"type": "null"}
    if kind == "enum":
        return {"enum": rng.sample(["red", "green", 'q"uote', 1, 2.5, None, True, [1, 2], {"k": "v"}], 3)}
    if kind == "const":
        return {"const": rng.choice(["fixed", 42, {"a": [True]}])}
    if kind == "string_len":
        lo = rng.randint(0, 4)
        return {"type": "string", "minLength": lo, "maxLength": lo + rng.randint(0, 6)}
    if kind == "string_pattern":
        return {"type": "string", "pattern": rng.choice(
            ["^[a-z]{2,5}$", "^\\d{3}-\\d{2}$", "^(yes|no|maybe)$", "^[A-Z][a-z]*( [A-Z][a-z]*)?$",
             "^[^\"\\\\]{1,4}\"$", "^a.b$"])}
    if kind == "uuid":
        return {"type": "string", "format": "uuid"}
    if kind == "int_range":
        lo = rng.randint(-1000, 1000)
        schema = {"type": "integer", "minimum": lo}
        if rng.random() < 0.7:
            schema["maximum"] = lo + rng.randint(0, 2000)
        if rng.random() < 0.3:
            schema = {"type": "integer", "exclusiveMinimum": lo, "exclusiveMaximum": lo + rng.randint(2, 50)}
        return schema
    if kind == "number_range":
        lo = rng.randint(0, 100)
        return {"type": "number", "minimum": lo, "maximum": lo + rng.randint(0, 100)}
    if kind == "object":
        names = rng.sample(NAMES, rng.randint(0, 4))
        props = {n: random_schema(rng, depth + 1) for n in names}
        schema = {"type": "object", "properties": props,
                  "required": [n for n in names if rng.random() < 0.6]}
        if rng.random() < 0.1:
            # Extra members after the listed ones. Their names are free, so with listed
            # properties an extra could repeat one (docs: a known limit); none here.
            return {"type": "object", "additionalProperties": {"type": "integer"}}
        # Absent means false in restkv (OpenAI strict mode); say so for jsonschema.
        schema["additionalProperties"] = False
        return schema
    if kind == "array":
        schema = {"type": "array", "items": random_schema(rng, depth + 1)}
        if rng.random() < 0.5:
            lo = rng.randint(0, 2)
            schema["minItems"] = lo
            schema["maxItems"] = lo + rng.randint(0, 3)
        return schema
    if kind == "anyOf":
        return {"anyOf": [random_schema(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    # A recursive definition through $defs.
    return {"$defs": {"node": {"type": "object", "properties": {
                "v": random_schema(rng, depth + 1),
                "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}},
                "required": ["v", "next"], "additionalProperties": False}},
            "$ref": "#/$defs/node"}
