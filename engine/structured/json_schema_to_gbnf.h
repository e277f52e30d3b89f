// JsonSchemaToGbnf: a JSON Schema as a GBNF grammar whose sentences are the
// JSON texts that validate against it, plus the grammar of "any JSON object"
// (OpenAI's `json_object`).
//
// The practical subset (what OpenAI strict mode, Pydantic and vLLM users
// send); see docs/structured_outputs.md for the full table:
//   type (one or a list), const, enum, anyOf / oneOf (as anyOf: exclusivity
//   is not enforced), allOf with one member, $ref to "#", "#/$defs/..." or
//   "#/definitions/..." (recursion allowed), $defs / definitions;
//   object: properties (emitted in the order given), required,
//     additionalProperties (false when absent, as in OpenAI strict mode; true
//     or a schema allows extra members after the listed ones);
//   array: items, prefixItems, minItems, maxItems;
//   string: minLength, maxLength, pattern (matched in full), format
//     (date, time, date-time, uuid, email; a fixed regex for each);
//   integer: minimum, maximum, exclusiveMinimum, exclusiveMaximum (any int64);
//   number: the same bounds when they are integers >= 0;
//   boolean, null; annotations (title, description, default, examples, ...)
//   are ignored.
// Anything else is InvalidArgument naming the keyword and where it is
// ("unsupported JSON Schema keyword 'uniqueItems' at #/properties/tags").
//
// Whitespace: at most one space or one newline plus up to 16 spaces/tabs
// between tokens, so a model cannot pad forever. Numbers have at most 16
// integer and 16 fraction digits for the same reason.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace restkv::engine::structured {

// GBNF text with a `root` rule, or InvalidArgument (bad JSON, an
// unsupported keyword, a bad pattern, an unresolvable $ref, ...).
absl::StatusOr<std::string> JsonSchemaToGbnf(std::string_view schema_json);

// GBNF text for any JSON object (the root value is an object).
std::string JsonObjectGbnf();

}  // namespace restkv::engine::structured
