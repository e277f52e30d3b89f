// Structured-output fields of a completions or chat body, parsed into the
// engine's GrammarSpec (engine/structured/grammar_compiler.h).
//
// Accepted (at most one constraint per request; more is a 400):
//   response_format: {"type": "text"}                   no constraint
//                    {"type": "json_object"}            any JSON object
//                    {"type": "json_schema", "json_schema":
//                       {"name": ..., "schema": {...}, "strict": bool}}
//   guided_json (object, or a string of JSON), guided_regex (string),
//   guided_choice (array of strings), guided_grammar (GBNF string)     vLLM
//   structured_outputs: {"json" | "regex" | "choice" | "grammar" |
//                        "json_object": true}          vLLM's newer name
// `guided_decoding_backend` is accepted and ignored (there is one backend);
// `guided_whitespace_pattern` is refused. `strict` is accepted either way:
// the output is always held to the schema.
//
// Errors: InvalidArgument with the field as param (api_error.h): wrong
// types, an unknown response_format type, a json_schema without `schema`,
// several constraints at once. Whether the schema/regex/grammar itself is
// valid is decided when it is compiled (generation_plan.cc), also a 400
// naming the field.
//
// Thread safety: pure function.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "engine/structured/grammar_compiler.h"
#include "server/json.h"

namespace restkv::server {

struct StructuredOutput {
  engine::structured::GrammarSpec spec;
  std::string param;  // the request field it came from, for errors
};

absl::Status ParseStructuredOutput(const Json& body, std::optional<StructuredOutput>* out);

}  // namespace restkv::server
