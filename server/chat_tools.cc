#include "server/chat_tools.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "server/api_error.h"
#include "server/json_fields.h"

namespace restkv::server {
namespace {

using engine::jinja::Value;
using json = Json;

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }
std::string_view TrimLeft(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  return s;
}
std::string_view Trim(std::string_view s) {
  s = TrimLeft(s);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}
bool ConsumePrefix(std::string_view* s, std::string_view prefix) {
  if (s->substr(0, prefix.size()) != prefix) return false;
  s->remove_prefix(prefix.size());
  return true;
}

absl::StatusOr<ToolDef> ParseFunction(const json& f, const std::string& param) {
  if (!f.is_object()) return WrongType(param, "an object", f);
  ToolDef d;
  const json* name = Field(f, "name");
  if (name == nullptr) return InvalidParam(param + ".name", "a function needs a 'name'");
  if (!name->is_string() || name->get<std::string>().empty()) {
    return WrongType(param + ".name", "a non-empty string", *name);
  }
  d.name = name->get<std::string>();
  if (const json* p = Field(f, "parameters"); p != nullptr) {
    if (!p->is_object()) return WrongType(param + ".parameters", "a JSON Schema object", *p);
    d.parameters = *p;
  } else {
    d.parameters = json::object();
  }
  if (const json* desc = Field(f, "description"); desc != nullptr && !desc->is_string()) {
    return WrongType(param + ".description", "a string", *desc);
  }
  return d;
}

// The function name a tool_choice object names.
absl::StatusOr<std::string> NamedChoice(const json& v, const char* param, bool legacy) {
  const json* fn = legacy ? &v : Field(v, "function");
  if (!legacy) {
    const json* type = Field(v, "type");
    if (type == nullptr || !type->is_string() || type->get<std::string>() != "function") {
      return InvalidParam(param, "a tool_choice object needs \"type\": \"function\"");
    }
    if (fn == nullptr || !fn->is_object()) {
      return InvalidParam(param, "a tool_choice object needs \"function\": {\"name\": ...}");
    }
  }
  const json* name = Field(*fn, "name");
  if (name == nullptr || !name->is_string()) {
    return InvalidParam(param, absl::StrCat("'", param, "' must name a function"));
  }
  return name->get<std::string>();
}

std::string RandomSuffix(std::string_view prefix, size_t index) {
  return absl::StrFormat("call_%s%d", prefix, index);
}

// The first complete JSON value at the start of `text` (after whitespace),
// and where it ends.
std::optional<std::pair<json, size_t>> LeadingJson(std::string_view text) {
  size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  if (start >= text.size() || (text[start] != '{' && text[start] != '[')) return std::nullopt;
  const size_t end = JsonValueEnd(text, start);
  if (end == std::string_view::npos) return std::nullopt;
  json j = json::parse(text.substr(start, end - start), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return std::make_pair(std::move(j), end);
}

// {"name", "arguments"|"parameters"} → a call, when the name is a known tool.
std::optional<ToolCall> CallFromObject(const json& j, const ChatTools& tools) {
  if (!j.is_object()) return std::nullopt;
  auto name = j.find("name");
  if (name == j.end() || !name->is_string() || !tools.knows(name->get<std::string>())) {
    return std::nullopt;
  }
  json args = json::object();
  for (const char* key : {"arguments", "parameters"}) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (it->is_string()) {
      json parsed = json::parse(it->get<std::string>(), nullptr, false);
      if (parsed.is_discarded() || !parsed.is_object()) return std::nullopt;
      args = parsed;
    } else if (it->is_object()) {
      args = *it;
    } else {
      return std::nullopt;
    }
  }
  return ToolCall{"", name->get<std::string>(), args.dump()};
}

ParsedAssistantOutput ParseHermes(std::string_view text, const ChatTools& tools) {
  ParsedAssistantOutput out;
  constexpr std::string_view kOpen = "<tool_call>", kClose = "</tool_call>";
  size_t pos = 0;
  while (true) {
    const size_t open = text.find(kOpen, pos);
    if (open == std::string_view::npos) break;
    const size_t close = text.find(kClose, open + kOpen.size());
    const std::string_view body =
        text.substr(open + kOpen.size(),
                    (close == std::string_view::npos ? text.size() : close) - open - kOpen.size());
    auto j = LeadingJson(body);
    std::optional<ToolCall> call = j ? CallFromObject(j->first, tools) : std::nullopt;
    if (!call) break;
    out.content += text.substr(pos, open - pos);
    out.calls.push_back(std::move(*call));
    pos = close == std::string_view::npos ? text.size() : close + kClose.size();
  }
  out.content += text.substr(pos);
  if (!out.calls.empty()) out.content = std::string(Trim(out.content));
  return out;
}

ParsedAssistantOutput ParseLlama3(std::string_view text, const ChatTools& tools) {
  ParsedAssistantOutput out;
  std::string_view rest = TrimLeft(text);
  ConsumePrefix(&rest, "<|python_tag|>");
  while (true) {
    auto j = LeadingJson(rest);
    std::optional<ToolCall> call = j ? CallFromObject(j->first, tools) : std::nullopt;
    if (!call) break;
    out.calls.push_back(std::move(*call));
    rest = TrimLeft(rest.substr(j->second));
    if (!ConsumePrefix(&rest, ";")) break;
  }
  if (out.calls.empty() || !Trim(rest).empty()) {
    return ParsedAssistantOutput{std::string(text), {}};
  }
  return out;
}

ParsedAssistantOutput ParseMistral(std::string_view text, const ChatTools& tools) {
  const size_t at = text.find("[TOOL_CALLS]");
  if (at == std::string_view::npos) return ParsedAssistantOutput{std::string(text), {}};
  auto j = LeadingJson(text.substr(at + 12));
  ParsedAssistantOutput out;
  if (j && j->first.is_array()) {
    for (const json& item : j->first) {
      std::optional<ToolCall> call = CallFromObject(item, tools);
      if (!call) return ParsedAssistantOutput{std::string(text), {}};
      out.calls.push_back(std::move(*call));
    }
  }
  if (out.calls.empty()) return ParsedAssistantOutput{std::string(text), {}};
  out.content = std::string(Trim(text.substr(0, at)));
  return out;
}

}  // namespace

size_t JsonValueEnd(std::string_view t, size_t i) {
  if (t[i] == '"') {
    for (size_t k = i + 1; k < t.size(); ++k) {
      if (t[k] == '\\') {
        ++k;
      } else if (t[k] == '"') {
        return k + 1;
      }
    }
    return std::string_view::npos;
  }
  if (t[i] == '{' || t[i] == '[') {
    int depth = 0;
    bool in_string = false;
    for (size_t k = i; k < t.size(); ++k) {
      const char c = t[k];
      if (in_string) {
        if (c == '\\') {
          ++k;
        } else if (c == '"') {
          in_string = false;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        return k + 1;
      }
    }
    return std::string_view::npos;
  }
  // A scalar ends at the next delimiter; at the end of `t` it may go on.
  for (size_t k = i; k < t.size(); ++k) {
    if (IsSpace(t[k]) || t[k] == ',' || t[k] == '}' || t[k] == ']') return k;
  }
  return std::string_view::npos;
}

absl::StatusOr<ToolCallFormat> ParseToolCallFormatName(std::string_view name) {
  if (name == "hermes") return ToolCallFormat::kHermes;
  if (name == "llama3_json") return ToolCallFormat::kLlama3Json;
  if (name == "mistral") return ToolCallFormat::kMistral;
  return absl::InvalidArgumentError(absl::StrCat("unknown tool-call parser '", std::string(name),
                                                 "' (use hermes, llama3_json or mistral)"));
}

std::string_view ToolCallFormatName(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::kHermes:
      return "hermes";
    case ToolCallFormat::kLlama3Json:
      return "llama3_json";
    case ToolCallFormat::kMistral:
      return "mistral";
  }
  return "hermes";
}

ToolCallFormat ToolCallFormatForTemplate(std::string_view source) {
  if (source.find("[TOOL_CALLS]") != std::string_view::npos) return ToolCallFormat::kMistral;
  if (source.find("<tool_call>") != std::string_view::npos) return ToolCallFormat::kHermes;
  if (source.find("<|python_tag|>") != std::string_view::npos ||
      (source.find("<|start_header_id|>") != std::string_view::npos &&
       source.find("\"parameters\"") != std::string_view::npos)) {
    return ToolCallFormat::kLlama3Json;
  }
  return ToolCallFormat::kHermes;
}

bool ChatTools::knows(std::string_view name) const {
  return std::any_of(defs.begin(), defs.end(), [&](const ToolDef& d) { return d.name == name; });
}

absl::StatusOr<ChatTools> ParseChatTools(const json& body) {
  ChatTools t;
  const json* tools = Field(body, "tools");
  const json* functions = Field(body, "functions");
  if (tools != nullptr && functions != nullptr) {
    return InvalidParam("functions", "give either 'tools' or the legacy 'functions', not both");
  }
  json template_tools = json::array();
  if (tools != nullptr) {
    if (!tools->is_array()) return WrongType("tools", "an array", *tools);
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& tool = (*tools)[i];
      const std::string param = absl::StrFormat("tools[%d]", i);
      if (!tool.is_object()) return WrongType(param, "an object", tool);
      const json* type = Field(tool, "type");
      if (type == nullptr || !type->is_string() || type->get<std::string>() != "function") {
        return InvalidParam(param + ".type", "only tools of \"type\": \"function\" are supported");
      }
      const json* fn = Field(tool, "function");
      if (fn == nullptr) return InvalidParam(param + ".function", "a tool needs a 'function'");
      RESTKV_ASSIGN_OR_RETURN(ToolDef d, ParseFunction(*fn, param + ".function"));
      t.defs.push_back(std::move(d));
      template_tools.push_back(tool);
    }
  } else if (functions != nullptr) {
    t.legacy = true;
    if (!functions->is_array()) return WrongType("functions", "an array", *functions);
    for (size_t i = 0; i < functions->size(); ++i) {
      RESTKV_ASSIGN_OR_RETURN(ToolDef d,
                              ParseFunction((*functions)[i], absl::StrFormat("functions[%d]", i)));
      t.defs.push_back(std::move(d));
      template_tools.push_back({{"type", "function"}, {"function", (*functions)[i]}});
    }
  }
  for (size_t i = 0; i < t.defs.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (t.defs[i].name == t.defs[j].name) {
        return InvalidParam(t.legacy ? "functions" : "tools",
                            absl::StrCat("two tools are named '", t.defs[i].name, "'"));
      }
    }
  }
  if (!t.defs.empty()) t.value = JsonToTemplateValue(template_tools);

  const char* choice_param = t.legacy ? "function_call" : "tool_choice";
  const json* choice = Field(body, choice_param);
  if (!t.legacy && choice == nullptr && Field(body, "function_call") != nullptr) {
    return InvalidParam("function_call", "'function_call' needs the legacy 'functions'");
  }
  if (choice != nullptr) {
    if (choice->is_string()) {
      const std::string c = choice->get<std::string>();
      if (c == "auto") {
        t.choice = ChatTools::Choice::kAuto;
      } else if (c == "none") {
        t.choice = ChatTools::Choice::kNone;
      } else if (c == "required" && !t.legacy) {
        t.choice = ChatTools::Choice::kRequired;
      } else {
        return InvalidParam(
            choice_param,
            absl::StrCat("'", choice_param, "' must be ",
                         t.legacy ? "\"auto\", \"none\"" : "\"auto\", \"none\", \"required\"",
                         " or an object naming a function; got \"", c, "\""));
      }
    } else if (choice->is_object()) {
      RESTKV_ASSIGN_OR_RETURN(t.named, NamedChoice(*choice, choice_param, t.legacy));
      t.choice = ChatTools::Choice::kNamed;
    } else {
      return WrongType(choice_param, "a string or an object", *choice);
    }
    if (t.choice != ChatTools::Choice::kAuto && t.choice != ChatTools::Choice::kNone &&
        t.defs.empty()) {
      return InvalidParam(choice_param, absl::StrCat("'", choice_param, "' needs '",
                                                     t.legacy ? "functions" : "tools", "'"));
    }
    if (t.choice == ChatTools::Choice::kNamed && !t.knows(t.named)) {
      return InvalidParam(choice_param, absl::StrCat("'", choice_param, "' names the function '",
                                                     t.named, "', which is not in '",
                                                     t.legacy ? "functions" : "tools", "'"));
    }
  }
  RESTKV_RETURN_IF_ERROR(GetBool(body, "parallel_tool_calls", &t.parallel));
  return t;
}

std::string ConstrainedToolSchema(const ChatTools& tools) {
  if (tools.choice == ChatTools::Choice::kNamed) {
    for (const ToolDef& d : tools.defs) {
      if (d.name == tools.named) return d.parameters.dump();
    }
  }
  json any_of = json::array();
  for (const ToolDef& d : tools.defs) {
    any_of.push_back(
        {{"type", "object"},
         {"properties",
          {{"name", {{"type", "string"}, {"enum", {d.name}}}}, {"parameters", d.parameters}}},
         {"required", {"name", "parameters"}}});
  }
  json schema = {{"type", "array"}, {"minItems", 1}, {"items", {{"anyOf", any_of}}}};
  if (!tools.parallel) schema["maxItems"] = 1;
  return schema.dump();
}

Value JsonToTemplateValue(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return Value::None();
    case json::value_t::boolean:
      return Value::Bool(j.get<bool>());
    case json::value_t::number_integer:
      return Value::Int(j.get<int64_t>());
    case json::value_t::number_unsigned:
      return Value::Int(static_cast<int64_t>(j.get<uint64_t>()));
    case json::value_t::number_float:
      return Value::Float(j.get<double>());
    case json::value_t::string:
      return Value::String(j.get<std::string>());
    case json::value_t::array: {
      engine::jinja::ValueList items;
      for (const json& item : j) items.push_back(JsonToTemplateValue(item));
      return Value::List(std::move(items));
    }
    case json::value_t::object: {
      Value d = Value::Dict();
      for (auto it = j.begin(); it != j.end(); ++it) {
        d.mutable_dict().Set(it.key(), JsonToTemplateValue(it.value()));
      }
      return d;
    }
    default:
      return Value::None();
  }
}

absl::StatusOr<Value> TemplateMessages(const json& body,
                                       const std::vector<engine::ChatMessage>& parsed) {
  const json& messages = body.at("messages");
  engine::jinja::ValueList out;
  for (size_t i = 0; i < parsed.size(); ++i) {
    const json& m = messages[i];
    const std::string param = absl::StrFormat("messages[%d]", i);
    Value d = Value::Dict();
    d.mutable_dict().Set("role", Value::String(parsed[i].role));
    // A missing or null content (an assistant message that only calls
    // tools) reaches the template as "", as vLLM passes string contents.
    d.mutable_dict().Set("content", Value::String(parsed[i].content));
    if (const json* calls = Field(m, "tool_calls"); calls != nullptr) {
      if (parsed[i].role != "assistant") {
        return InvalidParam(param + ".tool_calls", "only assistant messages have 'tool_calls'");
      }
      if (!calls->is_array()) return WrongType(param + ".tool_calls", "an array", *calls);
      engine::jinja::ValueList list;
      for (size_t k = 0; k < calls->size(); ++k) {
        const json& call = (*calls)[k];
        const std::string cp = absl::StrFormat("%s.tool_calls[%d]", param, k);
        if (!call.is_object()) return WrongType(cp, "an object", call);
        const json* fn = Field(call, "function");
        if (fn == nullptr || !fn->is_object())
          return InvalidParam(cp + ".function", "a tool call needs a 'function' object");
        const json* name = Field(*fn, "name");
        if (name == nullptr || !name->is_string())
          return InvalidParam(cp + ".function.name", "a tool call needs a function 'name'");
        json args = json::object();
        if (const json* a = Field(*fn, "arguments"); a != nullptr) {
          if (a->is_string()) {
            args = json::parse(a->get<std::string>(), nullptr, false);
            if (args.is_discarded() || !args.is_object()) {
              return InvalidParam(cp + ".function.arguments",
                                  "'arguments' must be a JSON object (as a string)");
            }
          } else if (a->is_object()) {
            args = *a;
          } else {
            return WrongType(cp + ".function.arguments", "a string holding a JSON object", *a);
          }
        }
        json entry = {{"type", "function"}, {"function", {{"name", *name}, {"arguments", args}}}};
        if (const json* id = Field(call, "id"); id != nullptr) {
          if (!id->is_string()) return WrongType(cp + ".id", "a string", *id);
          entry["id"] = *id;
        }
        list.push_back(JsonToTemplateValue(entry));
      }
      d.mutable_dict().Set("tool_calls", Value::List(std::move(list)));
    }
    if (parsed[i].role == "tool") {
      const json* id = Field(m, "tool_call_id");
      if (id == nullptr) {
        return InvalidParam(
            param + ".tool_call_id",
            absl::StrCat("'", param, ".tool_call_id' is required for a tool message"));
      }
      if (!id->is_string()) return WrongType(param + ".tool_call_id", "a string", *id);
      d.mutable_dict().Set("tool_call_id", Value::String(id->get<std::string>()));
    }
    if (const json* name = Field(m, "name"); name != nullptr) {
      if (!name->is_string()) return WrongType(param + ".name", "a string", *name);
      d.mutable_dict().Set("name", Value::String(name->get<std::string>()));
    }
    out.push_back(std::move(d));
  }
  return Value::List(std::move(out));
}

ParsedAssistantOutput ParseToolCalls(std::string_view text, const ChatTools& tools,
                                     ToolCallFormat format, std::string_view id_prefix) {
  ParsedAssistantOutput out;
  if (!tools.active()) return ParsedAssistantOutput{std::string(text), {}};
  if (tools.constrained()) {
    auto j = LeadingJson(text);
    if (j && tools.choice == ChatTools::Choice::kNamed && j->first.is_object()) {
      out.calls.push_back({"", tools.named, j->first.dump()});
    } else if (j && j->first.is_array()) {
      for (const json& item : j->first) {
        if (std::optional<ToolCall> call = CallFromObject(item, tools)) out.calls.push_back(*call);
      }
    }
    if (out.calls.empty()) out.content = std::string(text);  // cut short (length): left as text
  } else {
    switch (format) {
      case ToolCallFormat::kHermes:
        out = ParseHermes(text, tools);
        break;
      case ToolCallFormat::kLlama3Json:
        out = ParseLlama3(text, tools);
        break;
      case ToolCallFormat::kMistral:
        out = ParseMistral(text, tools);
        break;
    }
  }
  if (!tools.parallel && out.calls.size() > 1) out.calls.resize(1);
  for (size_t i = 0; i < out.calls.size(); ++i) out.calls[i].id = RandomSuffix(id_prefix, i);
  return out;
}

json ToolCallsJson(const std::vector<ToolCall>& calls) {
  json out = json::array();
  for (const ToolCall& c : calls) {
    out.push_back({{"id", c.id},
                   {"type", "function"},
                   {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  }
  return out;
}

}  // namespace restkv::server
