// Tool calling on /v1/chat/completions: the request's tools and tool
// choice, the conversation as the chat template sees it, and the parsers
// that turn a model's tool-call text into OpenAI `tool_calls`.
//
// Request fields: `tools` (type "function" with name, description,
// parameters), `tool_choice` ("auto" | "none" | "required" |
// {"type": "function", "function": {"name"}}), `parallel_tool_calls`, and
// the legacy `functions` / `function_call` (mapped onto the same). As vLLM
// does: tool_choice "required" holds the output to a JSON array of
// {"name", "parameters"} objects (one item when parallel_tool_calls is
// false), a named tool to that function's parameters object, both with the
// structured-output grammar engine; "auto" lets the model write a call in
// the format its template teaches, which a parser recognises:
//   hermes       <tool_call>{"name": ..., "arguments": {...}}</tool_call> (Hermes, Qwen2.5,
//   SmolLM3) llama3_json  {"name": ..., "parameters": {...}} (optionally after <|python_tag|>; ';'
//   separates calls) mistral      [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]
// Templates that do not render tools themselves get none in the prompt
// (as in vLLM); a request with tools then still works with
// required/named.
//
// Errors: InvalidArgument naming the field (api_error.h): malformed tools,
// a tool_choice naming a function not in tools, a tool message without
// tool_call_id, arguments that are not a JSON object.
//
// Thread safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/jinja/value.h"
#include "engine/tokenizer/chat_template.h"
#include "server/json.h"

namespace restkv::server {

enum class ToolCallFormat { kHermes, kLlama3Json, kMistral };

// "hermes", "llama3_json", "mistral"; InvalidArgument listing them otherwise.
absl::StatusOr<ToolCallFormat> ParseToolCallFormatName(std::string_view name);
std::string_view ToolCallFormatName(ToolCallFormat format);
// The format a chat template teaches, by its markers (hermes when unsure).
ToolCallFormat ToolCallFormatForTemplate(std::string_view template_source);

struct ToolDef {
  std::string name;
  Json parameters;  // a JSON Schema object ({} when absent)
};

struct ChatTools {
  enum class Choice { kAuto, kNone, kRequired, kNamed };
  std::vector<ToolDef> defs;
  engine::jinja::Value value = engine::jinja::Value::None();  // the tools as the template sees them
  Choice choice = Choice::kAuto;
  std::string named;  // kNamed: the function
  bool parallel = true;
  bool legacy = false;  // the request used functions/function_call

  // Whether the output may hold tool calls that must be parsed.
  [[nodiscard]] bool active() const { return !defs.empty() && choice != Choice::kNone; }
  [[nodiscard]] bool constrained() const {
    return choice == Choice::kRequired || choice == Choice::kNamed;
  }
  // Whether `name` is one of the tools.
  [[nodiscard]] bool knows(std::string_view name) const;
};

absl::StatusOr<ChatTools> ParseChatTools(const Json& body);

// The JSON Schema (text) that tool_choice required/named holds the output to.
// REQUIRES: tools.constrained().
std::string ConstrainedToolSchema(const ChatTools& tools);

// Any JSON value as a template value (objects keep nlohmann's key order).
engine::jinja::Value JsonToTemplateValue(const Json& j);

// The conversation for the chat template: `parsed` (role, joined content)
// plus each message's tool_calls (arguments parsed from their JSON string
// into an object, as vLLM passes them), tool_call_id and name.
absl::StatusOr<engine::jinja::Value> TemplateMessages(
    const Json& body, const std::vector<engine::ChatMessage>& parsed);

struct ToolCall {
  std::string id;  // "call_…"
  std::string name;
  std::string arguments;  // a JSON object, as text
};

struct ParsedAssistantOutput {
  std::string content;  // the text outside the calls
  std::vector<ToolCall> calls;
};

// Splits a generated text into content and tool calls. With a constrained
// choice the text is the grammar's JSON; otherwise `format`'s markers are
// looked for (a text without them is all content). Calls naming unknown
// functions are kept as content. `id_prefix` makes the call ids unique.
ParsedAssistantOutput ParseToolCalls(std::string_view text, const ChatTools& tools,
                                     ToolCallFormat format, std::string_view id_prefix);

// One past the JSON value that starts at text[begin] (brackets matched
// outside strings; a scalar ends at the next delimiter), or npos when the
// text ends first, as a streamed text may.
size_t JsonValueEnd(std::string_view text, size_t begin);

// OpenAI's message.tool_calls array, or (legacy) the first call as
// message.function_call ({"name", "arguments"}).
Json ToolCallsJson(const std::vector<ToolCall>& calls);

}  // namespace restkv::server
