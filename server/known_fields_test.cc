#include "server/known_fields.h"

#include <string>

#include "gtest/gtest.h"
#include "server/openai_protocol.h"
#include "server/testing/log_capture.h"

namespace restkv::server {
namespace {

using json = Json;

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

TEST(KnownFieldsTest, EveryFieldTheParsersReadIsKnown) {
  // A body with every field the chat and completions parsers read, each
  // with a valid value: the parsers accept it and nothing is unknown.
  const json common = json::parse(R"({"model": "m", "temperature": 0.5, "top_p": 0.9,
      "top_k": 3, "min_p": 0.1, "presence_penalty": 0.1, "frequency_penalty": 0.1,
      "repetition_penalty": 1.1, "seed": 1, "stop": ["x"], "stop_token_ids": [1],
      "ignore_eos": false, "max_tokens": 5, "n": 1, "stream": true,
      "stream_options": {"include_usage": true}, "user": "u", "priority": 0,
      "kv_policy": "full", "kv_budget": 0, "min_tokens": 1, "include_stop_str_in_output": true,
      "skip_special_tokens": true, "spaces_between_special_tokens": true,
      "logit_bias": {"1": 1}, "truncate_prompt_tokens": 4, "best_of": 1, "suffix": "",
      "response_format": {"type": "text"}})");
  json completion = common;
  completion["prompt"] = "p";
  completion["echo"] = false;
  completion["logprobs"] = 1;
  ASSERT_TRUE(ParseCompletionRequest(completion).ok());
  EXPECT_EQ(UnknownFields(completion, FieldSet::kCompletion), std::vector<std::string>{});
  json chat = common;
  chat["messages"] = json::parse(R"([{"role": "user", "content": "hi"}])");
  chat["max_completion_tokens"] = 3;
  chat["logprobs"] = true;
  chat["top_logprobs"] = 2;
  chat["add_generation_prompt"] = true;
  ASSERT_TRUE(ParseChatRequest(chat).ok()) << ParseChatRequest(chat).status();
  EXPECT_EQ(UnknownFields(chat, FieldSet::kChat), std::vector<std::string>{});
  // Fields of the other route are unknown here.
  EXPECT_EQ(UnknownFields(chat, FieldSet::kCompletion),
            (std::vector<std::string>{"add_generation_prompt", "max_completion_tokens", "messages",
                                      "top_logprobs"}));
  const json tok = json::parse(R"({"prompt": "x", "add_special_tokens": true, "metadata": {}})");
  EXPECT_EQ(UnknownFields(tok, FieldSet::kTokenize), std::vector<std::string>{"metadata"});
}

TEST(KnownFieldsTest, EachUnknownNameIsLoggedOncePerRoute) {
  LogCapture capture;
  RequestLogger log(capture.file());
  IgnoredFieldWarnings warnings(&log);
  EXPECT_EQ(warnings.Note("/v1/chat/completions", {"max_token", "store"}), 2);
  EXPECT_EQ(warnings.Note("/v1/chat/completions", {"store", "max_token"}), 0);
  EXPECT_EQ(warnings.Note("/v1/completions", {"store"}), 1);
  const std::string text = capture.Text();
  EXPECT_EQ(Count(text, "WARNING"), 3) << text;
  EXPECT_EQ(Count(text, "'max_token'"), 1) << text;
  EXPECT_EQ(Count(text, "/v1/completions: ignoring unknown request field 'store'"), 1) << text;
}

TEST(KnownFieldsTest, ALogLineCannotBeForgedThroughAFieldName) {
  LogCapture capture;
  RequestLogger log(capture.file());
  IgnoredFieldWarnings warnings(&log);
  warnings.Note("/v1/completions", {"a\nFAKE LINE"});
  const std::string text = capture.Text();
  EXPECT_EQ(Count(text, "\n"), 1) << text;
}

}  // namespace
}  // namespace restkv::server
