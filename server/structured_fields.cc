#include "server/structured_fields.h"

#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "server/api_error.h"
#include "server/json_fields.h"

namespace restkv::server {
namespace {

using engine::structured::GrammarKind;
using json = Json;

absl::Status String(const json& v, const std::string& param, GrammarKind kind,
                    std::vector<StructuredOutput>* found) {
  if (!v.is_string()) return WrongType(param, "a string", v);
  found->push_back({{kind, v.get<std::string>(), {}}, param});
  return absl::OkStatus();
}

// A schema given as an object (or boolean), or as a string of JSON.
absl::Status Schema(const json& v, const std::string& param, std::vector<StructuredOutput>* found) {
  if (v.is_string()) return String(v, param, GrammarKind::kJsonSchema, found);
  if (!v.is_object() && !v.is_boolean()) return WrongType(param, "an object", v);
  found->push_back({{GrammarKind::kJsonSchema, v.dump(), {}}, param});
  return absl::OkStatus();
}

absl::Status Choice(const json& v, const std::string& param, std::vector<StructuredOutput>* found) {
  if (!v.is_array()) return WrongType(param, "an array of strings", v);
  if (v.empty()) return InvalidParam(param, absl::StrFormat("'%s' must not be empty", param));
  StructuredOutput s{{GrammarKind::kChoice, "", {}}, param};
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) return WrongType(absl::StrFormat("%s[%d]", param, i), "a string", v[i]);
    s.spec.choices.push_back(v[i].get<std::string>());
  }
  found->push_back(std::move(s));
  return absl::OkStatus();
}

absl::Status ResponseFormat(const json& v, std::vector<StructuredOutput>* found) {
  if (!v.is_object()) return WrongType("response_format", "an object", v);
  const json* type = Field(v, "type");
  if (type == nullptr)
    return InvalidParam("response_format.type", "'response_format.type' is required");
  if (!type->is_string()) return WrongType("response_format.type", "a string", *type);
  const std::string t = type->get<std::string>();
  if (t == "text") return absl::OkStatus();
  if (t == "json_object") {
    found->push_back({{GrammarKind::kJsonObject, "", {}}, "response_format"});
    return absl::OkStatus();
  }
  if (t != "json_schema") {
    return InvalidParam("response_format.type",
                        absl::StrFormat("response_format type '%s' is not supported (text, "
                                        "json_object or json_schema)",
                                        t));
  }
  const json* js = Field(v, "json_schema");
  if (js == nullptr || !js->is_object()) {
    return InvalidParam("response_format.json_schema",
                        "response_format of type json_schema needs a 'json_schema' object");
  }
  if (const json* strict = Field(*js, "strict"); strict != nullptr && !strict->is_boolean()) {
    return WrongType("response_format.json_schema.strict", "a boolean", *strict);
  }
  if (const json* name = Field(*js, "name"); name != nullptr && !name->is_string()) {
    return WrongType("response_format.json_schema.name", "a string", *name);
  }
  const json* schema = Field(*js, "schema");
  if (schema == nullptr) {
    return InvalidParam("response_format.json_schema.schema",
                        "'response_format.json_schema.schema' is required");
  }
  return Schema(*schema, "response_format.json_schema.schema", found);
}

absl::Status StructuredOutputs(const json& v, std::vector<StructuredOutput>* found) {
  if (!v.is_object()) return WrongType("structured_outputs", "an object", v);
  for (const auto& [key, value] : v.items()) {
    if (value.is_null()) continue;
    const std::string param = "structured_outputs." + key;
    if (key == "json") {
      RESTKV_RETURN_IF_ERROR(Schema(value, param, found));
    } else if (key == "regex") {
      RESTKV_RETURN_IF_ERROR(String(value, param, GrammarKind::kRegex, found));
    } else if (key == "choice") {
      RESTKV_RETURN_IF_ERROR(Choice(value, param, found));
    } else if (key == "grammar") {
      RESTKV_RETURN_IF_ERROR(String(value, param, GrammarKind::kGbnf, found));
    } else if (key == "json_object") {
      if (!value.is_boolean()) return WrongType(param, "a boolean", value);
      if (value.get<bool>()) found->push_back({{GrammarKind::kJsonObject, "", {}}, param});
    } else {
      return InvalidParam(param, absl::StrFormat("'%s' is not supported (json, regex, choice, "
                                                 "grammar or json_object)",
                                                 param));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseStructuredOutput(const json& body, std::optional<StructuredOutput>* out) {
  std::vector<StructuredOutput> found;
  if (const json* v = Field(body, "response_format"))
    RESTKV_RETURN_IF_ERROR(ResponseFormat(*v, &found));
  if (const json* v = Field(body, "guided_json"))
    RESTKV_RETURN_IF_ERROR(Schema(*v, "guided_json", &found));
  if (const json* v = Field(body, "guided_regex")) {
    RESTKV_RETURN_IF_ERROR(String(*v, "guided_regex", GrammarKind::kRegex, &found));
  }
  if (const json* v = Field(body, "guided_choice"))
    RESTKV_RETURN_IF_ERROR(Choice(*v, "guided_choice", &found));
  if (const json* v = Field(body, "guided_grammar")) {
    RESTKV_RETURN_IF_ERROR(String(*v, "guided_grammar", GrammarKind::kGbnf, &found));
  }
  if (const json* v = Field(body, "structured_outputs")) {
    RESTKV_RETURN_IF_ERROR(StructuredOutputs(*v, &found));
  }
  if (Field(body, "guided_whitespace_pattern") != nullptr) {
    return InvalidParam("guided_whitespace_pattern",
                        "'guided_whitespace_pattern' is not supported");
  }
  if (const json* v = Field(body, "guided_decoding_backend"); v != nullptr && !v->is_string()) {
    return WrongType("guided_decoding_backend", "a string", *v);
  }
  if (found.size() > 1) {
    std::vector<std::string> params;
    params.reserve(found.size());
    for (const StructuredOutput& s : found) params.push_back(s.param);
    return InvalidParam(
        found[1].param,
        absl::StrFormat("only one structured-output constraint may be given, got %s",
                        absl::StrJoin(params, ", ")));
  }
  if (!found.empty()) *out = std::move(found[0]);
  return absl::OkStatus();
}

}  // namespace restkv::server
