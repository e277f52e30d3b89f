#include "server/chat_tools.h"

#include <gtest/gtest.h>

#include "server/api_error.h"

namespace restkv::server {
namespace {

using json = Json;

ChatTools Tools(const char* extra = "") {
  json body = json::parse(std::string(R"({"tools": [
      {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
      {"type": "function", "function": {"name": "get_time"}}])") +
                          extra + "}");
  absl::StatusOr<ChatTools> t = ParseChatTools(body);
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

TEST(ChatToolsTest, HermesCallsAndContent) {
  const ChatTools t = Tools();
  ParsedAssistantOutput out = ParseToolCalls(
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\"}}\n"
      "</tool_call>\n<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>",
      t, ToolCallFormat::kHermes, "x_");
  ASSERT_EQ(out.calls.size(), 2u);
  EXPECT_EQ(out.calls[0].name, "get_weather");
  EXPECT_EQ(json::parse(out.calls[0].arguments), json::parse(R"({"city": "Paris"})"));
  EXPECT_EQ(out.calls[0].id, "call_x_0");
  EXPECT_EQ(out.calls[1].name, "get_time");
  EXPECT_EQ(out.content, "Let me check.");
  // An unknown function, or broken JSON, stays content.
  EXPECT_TRUE(ParseToolCalls("<tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call>", t,
                             ToolCallFormat::kHermes, "")
                  .calls.empty());
  EXPECT_EQ(ParseToolCalls("<tool_call>{\"name\": ", t, ToolCallFormat::kHermes, "").content,
            "<tool_call>{\"name\": ");
}

TEST(ChatToolsTest, Llama3JsonAndMistral) {
  const ChatTools t = Tools();
  ParsedAssistantOutput l = ParseToolCalls(
      "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}; "
      "{\"name\": \"get_time\", \"parameters\": {}}",
      t, ToolCallFormat::kLlama3Json, "");
  ASSERT_EQ(l.calls.size(), 2u);
  EXPECT_EQ(json::parse(l.calls[0].arguments)["city"], "Oslo");
  EXPECT_TRUE(
      ParseToolCalls("The answer is {\"name\": \"get_time\"}", t, ToolCallFormat::kLlama3Json, "")
          .calls.empty());
  ParsedAssistantOutput m = ParseToolCalls(
      "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}]", t,
      ToolCallFormat::kMistral, "");
  ASSERT_EQ(m.calls.size(), 1u);
  EXPECT_EQ(json::parse(m.calls[0].arguments)["city"], "Rome");
  EXPECT_EQ(m.content, "");
}

// A tool's parameters reach the template and the grammar in the client's
// key order (as vLLM's Python dicts), not sorted: the model is taught, and
// held to, the arguments in the order the tool lists them.
TEST(ChatToolsTest, ParametersKeepTheClientsKeyOrder) {
  const json body = json::parse(R"({"tools": [{"type": "function", "function": {"name": "f",
      "parameters": {"type": "object", "properties": {"zeta": {"type": "string"},
      "alpha": {"type": "integer"}}, "required": ["zeta", "alpha"]}}}],
      "tool_choice": {"type": "function", "function": {"name": "f"}}})");
  absl::StatusOr<ChatTools> t = ParseChatTools(body);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(
      ConstrainedToolSchema(*t),
      R"({"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"integer"}},)"
      R"("required":["zeta","alpha"]})");
  absl::StatusOr<std::string> rendered = t->value.ToJson();
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  EXPECT_EQ(*rendered,
            R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", )"
            R"("properties": {"zeta": {"type": "string"}, "alpha": {"type": "integer"}}, )"
            R"("required": ["zeta", "alpha"]}}}])");
}

TEST(ChatToolsTest, ConstrainedOutputs) {
  ChatTools required = Tools(R"(, "tool_choice": "required", "parallel_tool_calls": false)");
  const json schema = json::parse(ConstrainedToolSchema(required));
  EXPECT_EQ(schema["type"], "array");
  EXPECT_EQ(schema["minItems"], 1);
  EXPECT_EQ(schema["maxItems"], 1);
  EXPECT_EQ(schema["items"]["anyOf"].size(), 2u);
  ParsedAssistantOutput out = ParseToolCalls(R"([{"name": "get_time", "parameters": {}}])",
                                             required, ToolCallFormat::kHermes, "");
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_EQ(out.calls[0].name, "get_time");
  ChatTools named =
      Tools(R"(, "tool_choice": {"type": "function", "function": {"name": "get_weather"}})");
  EXPECT_EQ(json::parse(ConstrainedToolSchema(named))["required"][0], "city");
  out = ParseToolCalls(R"({"city": "Paris"})", named, ToolCallFormat::kHermes, "");
  ASSERT_EQ(out.calls.size(), 1u);
  EXPECT_EQ(out.calls[0].name, "get_weather");
}

TEST(ChatToolsTest, TemplateFormatAndBadInputs) {
  EXPECT_EQ(ToolCallFormatForTemplate("{{ '<tool_call>' }}"), ToolCallFormat::kHermes);
  EXPECT_EQ(ToolCallFormatForTemplate("[TOOL_CALLS] {{ x }}"), ToolCallFormat::kMistral);
  EXPECT_EQ(ToolCallFormatForTemplate("<|start_header_id|>{{ '\"parameters\"' }}"),
            ToolCallFormat::kLlama3Json);
  EXPECT_FALSE(ParseToolCallFormatName("xml").ok());
  const auto bad = [](const char* body) {
    absl::StatusOr<ChatTools> t = ParseChatTools(json::parse(body));
    EXPECT_FALSE(t.ok()) << body;
    return t.ok() ? std::string() : ApiErrorFromStatus(t.status()).param;
  };
  EXPECT_EQ(bad(R"({"tools": {}})"), "tools");
  EXPECT_EQ(bad(R"({"tools": [{"type": "function", "function": {"name": "a", "parameters": 3}}]})"),
            "tools[0].function.parameters");
  EXPECT_EQ(bad(R"({"tools": [{"type": "function", "function": {"name": "a"}},
                               {"type": "function", "function": {"name": "a"}}]})"),
            "tools");
  EXPECT_EQ(bad(R"({"tools": [{"type": "function", "function": {"name": "a"}}],
                    "tool_choice": {"type": "function", "function": {"name": "b"}}})"),
            "tool_choice");
  EXPECT_EQ(bad(R"({"functions": [{"name": "a"}], "function_call": "required"})"), "function_call");
}

}  // namespace
}  // namespace restkv::server
