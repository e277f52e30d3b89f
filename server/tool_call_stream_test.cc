#include "server/tool_call_stream.h"

#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "absl/strings/str_cat.h"
#include "server/json.h"

namespace restkv::server {
namespace {

ChatTools Tools(const char* extra = "") {
  const Json body = Json::parse(absl::StrCat(R"({"tools": [
      {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
      {"type": "function", "function": {"name": "get_time"}}])",
                                             extra, "}"));
  absl::StatusOr<ChatTools> t = ParseChatTools(body);
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

// The deltas put back together, as a client does.
struct Reassembled {
  std::string content;
  std::vector<ToolCall> calls;
  int argument_deltas = 0;
};

void Apply(const std::vector<ToolCallDelta>& deltas, Reassembled* r) {
  for (const ToolCallDelta& d : deltas) {
    if (d.call < 0) {
      r->content += d.content;
      continue;
    }
    if (!d.id.empty()) {
      ASSERT_EQ(d.call, static_cast<int32_t>(r->calls.size())) << "heads come in order";
      r->calls.push_back({d.id, d.name, ""});
      continue;
    }
    ASSERT_LT(d.call, static_cast<int32_t>(r->calls.size())) << "arguments after the head";
    r->calls[d.call].arguments += d.arguments;
    ++r->argument_deltas;
  }
}

// Streams `text` in pieces of the sizes `next_size` draws.
template <typename NextSize>
Reassembled Stream(std::string_view text, const ChatTools& tools, ToolCallFormat format,
                   NextSize next_size) {
  ToolCallStream stream(tools, format, "p_");
  Reassembled r;
  for (size_t i = 0; i < text.size();) {
    const size_t n = std::min(text.size() - i, next_size());
    Apply(stream.Append(text.substr(i, n)), &r);
    i += n;
  }
  Apply(stream.Finish(), &r);
  EXPECT_EQ(stream.calls_sent(), static_cast<int32_t>(r.calls.size()));
  return r;
}

struct Case {
  const char* name;
  ChatTools tools;
  ToolCallFormat format;
  std::string text;
};

std::vector<Case> Cases() {
  const ChatTools tools = Tools();
  const ChatTools required = Tools(R"(, "tool_choice": "required")");
  const ChatTools named =
      Tools(R"(, "tool_choice": {"type": "function", "function": {"name": "get_weather"}})");
  const ChatTools single = Tools(R"(, "parallel_tool_calls": false)");
  using F = ToolCallFormat;
  return {
      {"hermes_two_calls", tools, F::kHermes,
       "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
       "\"Paris\", \"days\": [1, 2, {\"x\": \"}\"}]}}\n</tool_call>\n<tool_call>{\"name\": "
       "\"get_time\", \"arguments\": {}}</tool_call>"},
      {"hermes_content_only", tools, F::kHermes, "Hello <b>there</b>, a < b and <tool"},
      {"hermes_unknown_function", tools, F::kHermes,
       "<tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call>"},
      {"hermes_arguments_first", tools, F::kHermes,
       "<tool_call>{\"arguments\": {\"city\": \"Oslo\"}, \"name\": \"get_weather\"}</tool_call>"},
      {"hermes_string_arguments", tools, F::kHermes,
       "<tool_call>{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": "
       "\\\"Rome\\\"}\"}</tool_call>"},
      {"hermes_no_arguments", tools, F::kHermes, "<tool_call>{\"name\": \"get_time\"}</tool_call>"},
      {"hermes_single_of_two", single, F::kHermes,
       "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>\n<tool_call>{\"name\": "
       "\"get_weather\", \"arguments\": {\"city\": \"Lima\"}}</tool_call>"},
      {"llama3_two_calls", tools, F::kLlama3Json,
       "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}; "
       "{\"name\": \"get_time\", \"parameters\": {}}"},
      {"llama3_content", tools, F::kLlama3Json, "Sure, {here} it is"},
      {"mistral_call", tools, F::kMistral,
       "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}]"},
      {"mistral_content", tools, F::kMistral, "No [TOOL calls needed"},
      {"required_two_calls", required, F::kHermes,
       "[{\"name\": \"get_time\", \"parameters\": {}}, {\"name\": \"get_weather\", "
       "\"parameters\": {\"city\": \"Quito\"}}]"},
      {"named", named, F::kHermes, "{\"city\": \"Paris\"}"},
  };
}

// Whatever the pieces, the stream says what the unstreamed parser says of
// the whole text: the same calls (ids, names, equal arguments) and content.
TEST(ToolCallStreamTest, ReassemblesToTheUnstreamedParse) {
  for (const Case& c : Cases()) {
    const ParsedAssistantOutput want = ParseToolCalls(c.text, c.tools, c.format, "p_");
    std::mt19937 rng(7);
    const std::vector<std::pair<const char*, std::function<size_t()>>> chunkings = {
        {"by byte", [] { return size_t{1}; }},
        {"whole", [] { return std::string::npos; }},
        {"random", [&rng] { return std::uniform_int_distribution<size_t>(1, 9)(rng); }},
    };
    for (const auto& [how, next] : chunkings) {
      SCOPED_TRACE(absl::StrCat(c.name, ", ", how));
      const Reassembled got = Stream(c.text, c.tools, c.format, next);
      EXPECT_EQ(got.content, want.content);
      ASSERT_EQ(got.calls.size(), want.calls.size());
      for (size_t k = 0; k < got.calls.size(); ++k) {
        EXPECT_EQ(got.calls[k].id, want.calls[k].id);
        EXPECT_EQ(got.calls[k].name, want.calls[k].name);
        EXPECT_EQ(Json::parse(got.calls[k].arguments), Json::parse(want.calls[k].arguments))
            << got.calls[k].arguments;
      }
    }
  }
}

// The arguments go out as they are written, not at the end.
TEST(ToolCallStreamTest, ArgumentsStreamAsTheyAreWritten) {
  const ChatTools tools = Tools();
  ToolCallStream stream(tools, ToolCallFormat::kHermes, "p_");
  EXPECT_TRUE(stream.Append("<tool_call>{\"name\": \"get_wea").empty());
  std::vector<ToolCallDelta> d = stream.Append("ther\", \"arguments\": {\"ci");
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].name, "get_weather");
  EXPECT_EQ(d[0].id, "call_p_0");
  EXPECT_EQ(d[1].arguments, "{\"ci");
  d = stream.Append("ty\": \"Paris\"}}</tool_call>");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].arguments, "ty\": \"Paris\"}");
  EXPECT_TRUE(stream.Finish().empty());
  EXPECT_EQ(stream.calls_sent(), 1);
}

// A possible marker is held back, never sent as content and taken back;
// the space before a call is not content either.
TEST(ToolCallStreamTest, HoldsBackWhatMayBecomeAMarker) {
  const ChatTools tools = Tools();
  ToolCallStream stream(tools, ToolCallFormat::kHermes, "");
  std::vector<ToolCallDelta> d = stream.Append("Checking <tool");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].content, "Checking");
  EXPECT_TRUE(stream.Append("_call>").empty());
  ToolCallStream llama(tools, ToolCallFormat::kLlama3Json, "");
  EXPECT_TRUE(llama.Append(" <|python").empty());
  // Not a call after the tag: all of it is content, as unstreamed.
  d = llama.Append("_tag|> hi");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].content, " <|python_tag|> hi");
  EXPECT_TRUE(llama.Finish().empty());
}

// A length cut inside the arguments: what was sent stays, nothing is
// resent as content.
TEST(ToolCallStreamTest, ACallCutShortStaysAsFarAsItGot) {
  const ChatTools tools = Tools();
  ToolCallStream stream(tools, ToolCallFormat::kHermes, "");
  Reassembled r;
  Apply(stream.Append("<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par"),
        &r);
  Apply(stream.Finish(), &r);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].arguments, "{\"city\": \"Par");
  EXPECT_EQ(r.content, "");
}

}  // namespace
}  // namespace restkv::server
