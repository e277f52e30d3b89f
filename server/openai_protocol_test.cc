// Parsing and validation of OpenAI request bodies: every accepted shape, and
// every bad input answered with InvalidArgument naming the field.
#include "server/openai_protocol.h"

#include <string>

#include "gtest/gtest.h"
#include "server/api_error.h"

namespace restkv::server {
namespace {

using json = Json;

json Body(const std::string& text) {
  absl::StatusOr<json> j = ParseJsonBody(text);
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? *j : json::object();
}

// Expects `status` to be InvalidArgument with param `param`.
void ExpectBadParam(const absl::Status& status, const std::string& param) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(ParamOf(status), param) << status;
}

TEST(OpenAiProtocolTest, ParseJsonBodyRejectsNonObjects) {
  EXPECT_FALSE(ParseJsonBody("").ok());
  EXPECT_FALSE(ParseJsonBody("{").ok());
  EXPECT_FALSE(ParseJsonBody("{\"a\":1,}").ok());
  EXPECT_FALSE(ParseJsonBody("[1,2]").ok());
  EXPECT_FALSE(ParseJsonBody("\"text\"").ok());
  EXPECT_FALSE(ParseJsonBody("nul").ok());
  EXPECT_FALSE(ParseJsonBody("{\"t\": 1e999}").ok());    // overflows a double
  EXPECT_FALSE(ParseJsonBody("{\"a\":\"\xff\"}").ok());  // invalid UTF-8 in a string
  absl::Status s = ParseJsonBody("{\"prompt\": ").status();
  EXPECT_NE(s.message().find("invalid JSON"), absl::string_view::npos) << s;
  EXPECT_TRUE(ParseJsonBody("{}").ok());
}

TEST(OpenAiProtocolTest, ParseJsonBodyRejectsBytesAfterTheValue) {
  // A NUL byte would end nlohmann's input early and hide what follows it.
  const std::string nul("{\"prompt\": \"a\"}\0garbage", 23);
  absl::Status s = ParseJsonBody(nul).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("NUL byte at offset 15"), absl::string_view::npos) << s;
  EXPECT_FALSE(ParseJsonBody("{\"a\": 1} trailing").ok());
  EXPECT_FALSE(ParseJsonBody("{\"a\": 1}{\"b\": 2}").ok());
  EXPECT_TRUE(ParseJsonBody("{\"a\": 1} \r\n\t").ok());  // white space may follow
}

TEST(OpenAiProtocolTest, ParseJsonBodyRejectsDeepNesting) {
  std::string deep =
      "{\"a\":" + std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']') + "}";
  EXPECT_FALSE(ParseJsonBody(deep).ok());
  std::string ok = "{\"a\":" + std::string(10, '[') + std::string(10, ']') + "}";
  EXPECT_TRUE(ParseJsonBody(ok).ok());
  // Brackets inside strings do not count.
  EXPECT_TRUE(ParseJsonBody("{\"a\":\"" + std::string(1000, '[') + "\"}").ok());
}

TEST(OpenAiProtocolTest, CompletionDefaultsFollowVllm) {
  absl::StatusOr<CompletionRequest> r = ParseCompletionRequest(Body(R"({"prompt": "hi"})"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model, "");
  ASSERT_EQ(r->prompts.size(), 1u);
  EXPECT_FALSE(r->prompts[0].is_tokens);
  EXPECT_EQ(r->prompts[0].text, "hi");
  EXPECT_EQ(r->gen.max_tokens, 16);
  EXPECT_EQ(r->gen.n, 1);
  EXPECT_FLOAT_EQ(r->gen.params.temperature, 1.0f);
  EXPECT_EQ(r->logprobs, -1);
  EXPECT_FALSE(r->echo);
  EXPECT_FALSE(r->gen.stream);
  EXPECT_FALSE(r->gen.kv_policy.has_value());
  EXPECT_FALSE(r->gen.kv_budget.has_value());
}

TEST(OpenAiProtocolTest, CompletionPromptShapes) {
  auto strings = ParseCompletionRequest(Body(R"({"prompt": ["a", "b"]})"));
  ASSERT_TRUE(strings.ok());
  ASSERT_EQ(strings->prompts.size(), 2u);
  EXPECT_EQ(strings->prompts[1].text, "b");
  auto ids = ParseCompletionRequest(Body(R"({"prompt": [1, 2, 3]})"));
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->prompts.size(), 1u);
  EXPECT_TRUE(ids->prompts[0].is_tokens);
  EXPECT_EQ(ids->prompts[0].tokens, (std::vector<int32_t>{1, 2, 3}));
  auto lists = ParseCompletionRequest(Body(R"({"prompt": [[1, 2], [3]]})"));
  ASSERT_TRUE(lists.ok());
  ASSERT_EQ(lists->prompts.size(), 2u);
  EXPECT_EQ(lists->prompts[1].tokens, std::vector<int32_t>{3});
}

TEST(OpenAiProtocolTest, CompletionBadPrompts) {
  ExpectBadParam(ParseCompletionRequest(Body(R"({})")).status(), "prompt");
  ExpectBadParam(ParseCompletionRequest(Body(R"({"prompt": null})")).status(), "prompt");
  ExpectBadParam(ParseCompletionRequest(Body(R"({"prompt": 5})")).status(), "prompt");
  ExpectBadParam(ParseCompletionRequest(Body(R"({"prompt": {}})")).status(), "prompt");
  ExpectBadParam(ParseCompletionRequest(Body(R"({"prompt": []})")).status(), "prompt");
  ExpectBadParam(ParseCompletionRequest(Body(R"({"prompt": [1, "a"]})")).status(), "prompt[1]");
  ExpectBadParam(ParseCompletionRequest(Body(R"({"prompt": [1, -2]})")).status(), "prompt[1]");
  ExpectBadParam(ParseCompletionRequest(Body(R"({"prompt": [1.5]})")).status(), "prompt[0]");
  ExpectBadParam(ParseCompletionRequest(Body(R"({"prompt": [1, 99999999999]})")).status(),
                 "prompt[1]");
  ExpectBadParam(ParseCompletionRequest(Body(R"({"prompt": ["a", 1]})")).status(), "prompt[1]");
  ExpectBadParam(ParseCompletionRequest(Body(R"({"prompt": ["a", []]})")).status(), "prompt[1]");
  ExpectBadParam(ParseCompletionRequest(Body(R"({"prompt": [[1], ["x"]]})")).status(),
                 "prompt[1][0]");
}

TEST(OpenAiProtocolTest, SamplingFieldsAreRead) {
  auto r = ParseCompletionRequest(Body(R"({
      "prompt": "x", "max_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": 40, "min_p": 0.1,
      "seed": -3, "stop": ["a", "b"], "presence_penalty": 1.5, "frequency_penalty": -1,
      "repetition_penalty": 1.2, "n": 3, "user": "u1", "stream": true,
      "stream_options": {"include_usage": true}, "ignore_eos": true, "priority": -2,
      "kv_policy": "full", "kv_budget": 256, "logprobs": 5, "echo": true,
      "stop_token_ids": [5], "unknown_field": {"anything": [1, 2]}})"));
  ASSERT_TRUE(r.ok()) << r.status();
  const engine::SamplingParams& p = r->gen.params;
  EXPECT_EQ(r->gen.max_tokens, 7);
  EXPECT_EQ(p.temperature, 0.0f);
  EXPECT_FLOAT_EQ(p.top_p, 0.5f);
  EXPECT_EQ(p.top_k, 40);
  EXPECT_FLOAT_EQ(p.min_p, 0.1f);
  EXPECT_EQ(p.seed, static_cast<uint64_t>(int64_t{-3}));
  EXPECT_EQ(p.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_FLOAT_EQ(p.presence_penalty, 1.5f);
  EXPECT_FLOAT_EQ(p.frequency_penalty, -1.0f);
  EXPECT_FLOAT_EQ(p.repetition_penalty, 1.2f);
  EXPECT_TRUE(p.ignore_eos);
  EXPECT_EQ(p.stop_token_ids, std::vector<int32_t>{5});
  EXPECT_EQ(r->gen.n, 3);
  EXPECT_EQ(r->gen.user, "u1");
  EXPECT_TRUE(r->gen.stream);
  EXPECT_TRUE(r->gen.include_usage);
  EXPECT_EQ(r->gen.priority, -2);
  EXPECT_EQ(r->gen.kv_policy, "full");
  EXPECT_EQ(r->gen.kv_budget, 256);
  EXPECT_EQ(r->logprobs, 5);
  EXPECT_TRUE(r->echo);
}

TEST(OpenAiProtocolTest, NullMeansAbsentAndIntegralFloatsAreIntegers) {
  auto r = ParseCompletionRequest(Body(R"({"prompt": "x", "max_tokens": null, "stop": null,
      "seed": null, "temperature": null, "n": 2.0})"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->gen.max_tokens, 16);
  EXPECT_TRUE(r->gen.params.stop.empty());
  EXPECT_FALSE(r->gen.params.seed.has_value());
  EXPECT_EQ(r->gen.n, 2);
  auto single_stop = ParseCompletionRequest(Body(R"({"prompt": "x", "stop": "\n"})"));
  ASSERT_TRUE(single_stop.ok());
  EXPECT_EQ(single_stop->gen.params.stop, std::vector<std::string>{"\n"});
}

struct BadField {
  const char* fields;  // spliced into {"prompt": "x", <fields>}
  const char* param;
};

void PrintTo(const BadField& c, std::ostream* os) { *os << c.fields; }

class OpenAiProtocolBadFieldTest : public ::testing::TestWithParam<BadField> {};

TEST_P(OpenAiProtocolBadFieldTest, IsRejectedNamingTheField) {
  const BadField& c = GetParam();
  const std::string text = std::string(R"({"prompt": "x", )") + c.fields + "}";
  absl::StatusOr<json> body = ParseJsonBody(text);
  ASSERT_TRUE(body.ok()) << text;
  ExpectBadParam(ParseCompletionRequest(*body).status(), c.param);
}

INSTANTIATE_TEST_SUITE_P(
    AllFields, OpenAiProtocolBadFieldTest,
    ::testing::Values(
        BadField{R"("model": 3)", "model"}, BadField{R"("max_tokens": 0)", "max_tokens"},
        BadField{R"("max_tokens": -5)", "max_tokens"},
        BadField{R"("max_tokens": "10")", "max_tokens"},
        BadField{R"("max_tokens": 1.5)", "max_tokens"},
        BadField{R"("max_tokens": 3000000000)", "max_tokens"},
        BadField{R"("temperature": -0.1)", "temperature"},
        BadField{R"("temperature": 2.5)", "temperature"},
        BadField{R"("temperature": "hot")", "temperature"},
        BadField{R"("temperature": true)", "temperature"},
        BadField{R"("temperature": 1e30)", "temperature"}, BadField{R"("top_p": 0)", "top_p"},
        BadField{R"("top_p": 1.01)", "top_p"}, BadField{R"("top_k": -2)", "top_k"},
        BadField{R"("top_k": 0.5)", "top_k"}, BadField{R"("min_p": 1.5)", "min_p"},
        BadField{R"("min_p": -1)", "min_p"}, BadField{R"("seed": "1")", "seed"},
        BadField{R"("seed": 0.5)", "seed"}, BadField{R"("stop": 5)", "stop"},
        BadField{R"("stop": "")", "stop"}, BadField{R"("stop": ["a", 1])", "stop[1]"},
        BadField{R"("stop": ["a", ""])", "stop[1]"},
        BadField{R"("presence_penalty": 2.5)", "presence_penalty"},
        BadField{R"("frequency_penalty": -3)", "frequency_penalty"},
        BadField{R"("repetition_penalty": 0)", "repetition_penalty"},
        BadField{R"("repetition_penalty": -1)", "repetition_penalty"}, BadField{R"("n": 0)", "n"},
        BadField{R"("n": 129)", "n"}, BadField{R"("n": "2")", "n"},
        BadField{R"("stream": "yes")", "stream"}, BadField{R"("stream": 1)", "stream"},
        BadField{R"("stream_options": {"include_usage": true})", "stream_options"},
        BadField{R"("stream": true, "stream_options": 1)", "stream_options"},
        BadField{R"("stream": true, "stream_options": {"include_usage": "y"})",
                 "stream_options.include_usage"},
        BadField{R"("user": 5)", "user"}, BadField{R"("ignore_eos": "no")", "ignore_eos"},
        BadField{R"("priority": "high")", "priority"}, BadField{R"("priority": 1e12)", "priority"},
        BadField{R"("kv_policy": 3)", "kv_policy"}, BadField{R"("kv_budget": -1)", "kv_budget"},
        BadField{R"("kv_budget": "many")", "kv_budget"},
        BadField{R"("stop_token_ids": [-1])", "stop_token_ids[0]"},
        BadField{R"("stop_token_ids": 5)", "stop_token_ids"},
        BadField{R"("logprobs": 21)", "logprobs"}, BadField{R"("logprobs": true)", "logprobs"},
        BadField{R"("logprobs": -1)", "logprobs"}, BadField{R"("echo": "true")", "echo"},
        BadField{R"("logit_bias": {"a": 5})", "logit_bias"},
        BadField{R"("logit_bias": {"-1": 5})", "logit_bias"},
        BadField{R"("logit_bias": [1])", "logit_bias"},
        BadField{R"("logit_bias": {"1": "up"})", "logit_bias[1]"},
        BadField{R"("min_tokens": -1)", "min_tokens"},
        BadField{R"("min_tokens": "3")", "min_tokens"},
        BadField{R"("include_stop_str_in_output": 1)", "include_stop_str_in_output"},
        BadField{R"("skip_special_tokens": "no")", "skip_special_tokens"},
        BadField{R"("spaces_between_special_tokens": 0)", "spaces_between_special_tokens"},
        BadField{R"("truncate_prompt_tokens": 0)", "truncate_prompt_tokens"},
        BadField{R"("truncate_prompt_tokens": -2)", "truncate_prompt_tokens"},
        BadField{R"("stream": true, "stream_options": {"continuous_usage_stats": 1})",
                 "stream_options.continuous_usage_stats"},
        BadField{R"("tools": [{"type": "function"}])", "tools"},
        BadField{R"("response_format": {"type": "xml"})", "response_format.type"},
        BadField{R"("response_format": {"type": "json_schema"})", "response_format.json_schema"},
        BadField{R"("response_format": {"type": "json_schema", "json_schema": {"name": "x"}})",
                 "response_format.json_schema.schema"},
        BadField{R"("response_format": "json")", "response_format"},
        BadField{R"("guided_regex": 5)", "guided_regex"},
        BadField{R"("guided_choice": [])", "guided_choice"},
        BadField{R"("guided_choice": ["a", 1])", "guided_choice[1]"},
        BadField{R"("guided_json": 5)", "guided_json"},
        BadField{R"("structured_outputs": {"yaml": "x"})", "structured_outputs.yaml"},
        BadField{R"("guided_whitespace_pattern": " ")", "guided_whitespace_pattern"},
        BadField{R"("guided_regex": "a", "guided_choice": ["b"])", "guided_choice"},
        BadField{R"("best_of": 2)", "best_of"}, BadField{R"("suffix": "end")", "suffix"},
        BadField{R"("n": 100, "prompt": ["a", "b"])", "n"}));

TEST(OpenAiProtocolTest, ChatMessagesAndContentParts) {
  auto r = ParseChatRequest(Body(R"({"model": "m", "messages": [
      {"role": "system", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]},
      {"role": "assistant", "content": null},
      {"role": "developer", "content": "dev", "name": "ignored"}],
      "logprobs": true, "top_logprobs": 3, "max_completion_tokens": 9, "max_tokens": 4})"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model, "m");
  ASSERT_EQ(r->messages.size(), 4u);
  EXPECT_EQ(r->messages[0].role, "system");
  EXPECT_EQ(r->messages[1].content, "Hello, \nworld");  // parts joined with "\n", as vLLM
  EXPECT_EQ(r->messages[2].content, "");
  EXPECT_EQ(r->messages[3].role, "system");
  EXPECT_TRUE(r->logprobs);
  EXPECT_EQ(r->top_logprobs, 3);
  EXPECT_EQ(r->gen.max_tokens, 9);  // max_completion_tokens wins
  auto defaults = ParseChatRequest(Body(R"({"messages": [{"role": "user", "content": "hi"}]})"));
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->gen.max_tokens.has_value());  // => the rest of the context
  EXPECT_TRUE(defaults->add_generation_prompt);
}

TEST(OpenAiProtocolTest, VllmSamplingExtensions) {
  auto r = ParseCompletionRequest(Body(R"({"prompt": "x", "min_tokens": 3,
      "include_stop_str_in_output": true, "skip_special_tokens": false,
      "spaces_between_special_tokens": false, "truncate_prompt_tokens": 5,
      "logit_bias": {"7": 250, "3": -1.5, "12": -1000}, "stream": true,
      "stream_options": {"include_usage": true, "continuous_usage_stats": true}})"));
  ASSERT_TRUE(r.ok()) << r.status();
  const engine::SamplingParams& p = r->gen.params;
  EXPECT_EQ(p.min_tokens, 3);
  EXPECT_TRUE(p.include_stop_str_in_output);
  EXPECT_FALSE(p.skip_special_tokens);
  EXPECT_FALSE(p.spaces_between_special_tokens);
  EXPECT_EQ(r->gen.truncate_prompt_tokens, 5);
  EXPECT_TRUE(r->gen.continuous_usage);
  // Sorted by id; clamped to [-100, 100] as vLLM does.
  const std::vector<std::pair<int32_t, float>> bias = {{3, -1.5f}, {7, 100.0f}, {12, -100.0f}};
  EXPECT_EQ(p.logit_bias, bias);
  auto defaults = ParseCompletionRequest(Body(R"({"prompt": "x", "truncate_prompt_tokens": -1})"));
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->gen.params.min_tokens, 0);
  EXPECT_TRUE(defaults->gen.params.skip_special_tokens);
  EXPECT_TRUE(defaults->gen.params.spaces_between_special_tokens);
  EXPECT_FALSE(defaults->gen.params.include_stop_str_in_output);
  EXPECT_EQ(defaults->gen.truncate_prompt_tokens, -1);
}

TEST(OpenAiProtocolTest, TopLogprobsZeroNeedsNoLogprobs) {
  auto zero = ParseChatRequest(
      Body(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 0})"));
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_FALSE(zero->logprobs);
  auto one = ParseChatRequest(
      Body(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 1})"));
  ExpectBadParam(one.status(), "top_logprobs");
}

TEST(OpenAiProtocolTest, ChatBadMessages) {
  auto bad = [](const std::string& text) { return ParseChatRequest(Body(text)).status(); };
  ExpectBadParam(bad(R"({})"), "messages");
  ExpectBadParam(bad(R"({"messages": "hi"})"), "messages");
  ExpectBadParam(bad(R"({"messages": []})"), "messages");
  ExpectBadParam(bad(R"({"messages": ["hi"]})"), "messages[0]");
  ExpectBadParam(bad(R"({"messages": [{"content": "hi"}]})"), "messages[0].role");
  ExpectBadParam(bad(R"({"messages": [{"role": 1, "content": "hi"}]})"), "messages[0].role");
  ExpectBadParam(bad(R"({"messages": [{"role": "robot", "content": "hi"}]})"), "messages[0].role");
  ExpectBadParam(bad(R"({"messages": [{"role": "tool", "content": "hi"}]})"),
                 "messages[0].tool_call_id");
  ExpectBadParam(
      bad(R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {}}]})"),
      "tools[0].function.name");
  ExpectBadParam(
      bad(R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})"),
      "tool_choice");
  ExpectBadParam(bad(R"({"messages": [{"role": "user"}]})"), "messages[0].content");
  ExpectBadParam(bad(R"({"messages": [{"role": "user", "content": 5}]})"), "messages[0].content");
  ExpectBadParam(bad(R"({"messages": [{"role": "user", "content": ["x"]}]})"),
                 "messages[0].content[0]");
  ExpectBadParam(bad(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})"),
                 "messages[0].content[0].type");
  ExpectBadParam(bad(R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})"),
                 "messages[0].content[0].text");
  ExpectBadParam(
      bad(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]})"),
      "messages[0].content[0].text");
  const std::string ok = R"("messages": [{"role": "user", "content": "hi"}])";
  ExpectBadParam(bad("{" + ok + R"(, "top_logprobs": 2})"), "top_logprobs");
  ExpectBadParam(bad("{" + ok + R"(, "logprobs": true, "top_logprobs": 21})"), "top_logprobs");
  ExpectBadParam(bad("{" + ok + R"(, "logprobs": 1})"), "logprobs");
  ExpectBadParam(bad("{" + ok + R"(, "max_completion_tokens": 0})"), "max_completion_tokens");
  ExpectBadParam(bad("{" + ok + R"(, "add_generation_prompt": "no"})"), "add_generation_prompt");
}

TEST(OpenAiProtocolTest, TokenizeAndDetokenize) {
  auto prompt = ParseTokenizeRequest(Body(R"({"prompt": "hi"})"));
  ASSERT_TRUE(prompt.ok());
  EXPECT_FALSE(prompt->is_chat);
  EXPECT_TRUE(prompt->add_special_tokens);
  auto chat = ParseTokenizeRequest(Body(R"({"messages": [{"role": "user", "content": "hi"}],
                                           "return_token_strs": true})"));
  ASSERT_TRUE(chat.ok());
  EXPECT_TRUE(chat->is_chat);
  EXPECT_FALSE(chat->add_special_tokens);
  EXPECT_TRUE(chat->return_token_strs);
  ExpectBadParam(ParseTokenizeRequest(Body(R"({})")).status(), "prompt");
  ExpectBadParam(ParseTokenizeRequest(Body(R"({"prompt": "a", "messages": []})")).status(),
                 "messages");
  ExpectBadParam(ParseTokenizeRequest(Body(R"({"prompt": 1})")).status(), "prompt");
  ExpectBadParam(ParseTokenizeRequest(Body(R"({"prompt": "a", "add_special_tokens": 1})")).status(),
                 "add_special_tokens");

  auto detok = ParseDetokenizeRequest(Body(R"({"tokens": [1, 2]})"));
  ASSERT_TRUE(detok.ok());
  EXPECT_EQ(detok->tokens, (std::vector<int32_t>{1, 2}));
  ExpectBadParam(ParseDetokenizeRequest(Body(R"({})")).status(), "tokens");
  ExpectBadParam(ParseDetokenizeRequest(Body(R"({"tokens": "1 2"})")).status(), "tokens");
  ExpectBadParam(ParseDetokenizeRequest(Body(R"({"tokens": [1, "2"]})")).status(), "tokens[1]");
}

}  // namespace

TEST(OpenAiProtocolTest, StructuredOutputFields) {
  using engine::structured::GrammarKind;
  struct Case {
    std::string field;
    GrammarKind kind;
    std::string text;
    std::string param;
  };
  const Case cases[] = {
      {R"("response_format": {"type": "json_object"})", GrammarKind::kJsonObject, "",
       "response_format"},
      {R"("response_format": {"type": "json_schema", "json_schema": {"name": "n", "strict": true,
          "schema": {"type": "integer"}}})",
       GrammarKind::kJsonSchema, R"({"type":"integer"})", "response_format.json_schema.schema"},
      {R"("guided_json": {"type": "string"})", GrammarKind::kJsonSchema, R"({"type":"string"})",
       "guided_json"},
      // Property order is the order the grammar makes the model write them
      // in: the schema reaches the compiler with the client's key order.
      {R"("guided_json": {"type": "object", "properties": {"zeta": {}, "alpha": {}}})",
       GrammarKind::kJsonSchema, R"({"type":"object","properties":{"zeta":{},"alpha":{}}})",
       "guided_json"},
      {R"("guided_json": "{\"type\": \"null\"}")", GrammarKind::kJsonSchema, R"({"type": "null"})",
       "guided_json"},
      {R"("guided_regex": "a+")", GrammarKind::kRegex, "a+", "guided_regex"},
      {R"("guided_grammar": "root ::= \"x\"")", GrammarKind::kGbnf, "root ::= \"x\"",
       "guided_grammar"},
      {R"("structured_outputs": {"regex": "b"})", GrammarKind::kRegex, "b",
       "structured_outputs.regex"},
  };
  for (const Case& c : cases) {
    auto r = ParseCompletionRequest(Body(R"({"prompt": "p", )" + c.field + "}"));
    ASSERT_TRUE(r.ok()) << c.field << ": " << r.status();
    ASSERT_TRUE(r->gen.structured.has_value()) << c.field;
    EXPECT_EQ(r->gen.structured->spec.kind, c.kind) << c.field;
    EXPECT_EQ(r->gen.structured->spec.text, c.text) << c.field;
    EXPECT_EQ(r->gen.structured->param, c.param) << c.field;
  }
  auto choice = ParseChatRequest(
      Body(R"({"messages": [{"role": "user", "content": "hi"}], "guided_choice": ["yes", "no"]})"));
  ASSERT_TRUE(choice.ok()) << choice.status();
  EXPECT_EQ(choice->gen.structured->spec.choices, (std::vector<std::string>{"yes", "no"}));
  auto text = ParseChatRequest(Body(
      R"({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "text"}})"));
  ASSERT_TRUE(text.ok());
  EXPECT_FALSE(text->gen.structured.has_value());
}

}  // namespace restkv::server
