// The exact shapes of OpenAI responses, chunks, logprobs and errors.
#include "server/openai_response.h"

#include <memory>

#include "engine/capacity_error.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "server/api_error.h"

namespace restkv::server {
namespace {

using json = Json;

// A byte-level tokenizer whose tokens are "a", "b", "c" and a control token.
std::unique_ptr<engine::Tokenizer> SmallTokenizer() {
  engine::TokenizerData d;
  d.model = "gpt2";
  d.pre = "default";
  d.tokens = {"a", "b", "c", "<|im_end|>"};
  d.token_types = {1, 1, 1, 3};
  d.eos_id = 3;
  auto tok = engine::Tokenizer::Create(d);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return std::move(*tok);
}

const ResponseMeta kMeta{"cmpl-1", "m", 123};

TEST(OpenAiResponseTest, ResponseIdsAreUniqueAndPrefixed) {
  const std::string a = NewResponseId("chatcmpl-");
  const std::string b = NewResponseId("chatcmpl-");
  EXPECT_EQ(a.rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(a.size(), 9u + 32u);
  EXPECT_NE(a, b);
}

TEST(OpenAiResponseTest, CompletionShape) {
  ChoiceResult c{0, "hello", nullptr, "length"};
  const json j = CompletionResponseJson(kMeta, {c}, {5, 2, 7, 0, 4});
  EXPECT_EQ(j, json::parse(R"({"id": "cmpl-1", "object": "text_completion", "created": 123,
      "model": "m", "system_fingerprint": null, "choices": [{"index": 0, "text": "hello",
      "logprobs": null, "finish_reason": "length", "stop_reason": null}],
      "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
      "prompt_tokens_details": {"cached_tokens": 4}, "kv_tokens_kept": 7,
      "kv_tokens_evicted": 0}})"));
}

TEST(OpenAiResponseTest, StopReasonAndFingerprint) {
  EXPECT_EQ(StopReasonJson("###", 7), "###");  // a stop string wins
  EXPECT_EQ(StopReasonJson("", 7), 7);
  EXPECT_TRUE(StopReasonJson("", -1).is_null());
  json chunk = CompletionChunkJson(kMeta, 0, "", nullptr, "stop", false);
  SetChunkStopReason(StopReasonJson("", 13), &chunk);
  EXPECT_EQ(chunk["choices"][0]["stop_reason"], 13);
  const std::string fp = SystemFingerprint({"v1", "model.gguf"});
  EXPECT_EQ(fp.rfind("fp_", 0), 0u);
  EXPECT_EQ(fp.size(), 3u + 16u);
  EXPECT_EQ(fp, SystemFingerprint({"v1", "model.gguf"}));
  EXPECT_NE(fp, SystemFingerprint({"v1model", ".gguf"}));  // parts are delimited
  ResponseMeta meta = kMeta;
  meta.system_fingerprint = fp;
  EXPECT_EQ(CompletionResponseJson(meta, {}, {})["system_fingerprint"], fp);
}

TEST(OpenAiResponseTest, ChatShape) {
  ChoiceResult c{1, "hi", nullptr, "stop"};
  const json j = ChatResponseJson({"chatcmpl-1", "m", 5}, {c}, {3, 1, 0, 0});
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0], json::parse(R"({"index": 1, "message": {"role": "assistant",
      "content": "hi"}, "logprobs": null, "finish_reason": "stop", "stop_reason": null})"));
  EXPECT_EQ(j["usage"]["total_tokens"], 4);
}

TEST(OpenAiResponseTest, ChunkShapes) {
  const json first = ChatChunkJson(kMeta, 0, {{"role", "assistant"}, {"content", ""}}, nullptr,
                                   std::nullopt, false);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0], json::parse(R"({"index": 0, "delta": {"role": "assistant",
      "content": ""}, "logprobs": null, "finish_reason": null})"));
  EXPECT_FALSE(first.contains("usage"));
  const json last = ChatChunkJson(kMeta, 0, json::object(), nullptr, "stop", true);
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(last.contains("usage"));
  EXPECT_TRUE(last["usage"].is_null());
  const json text = CompletionChunkJson(kMeta, 2, "ab", nullptr, std::nullopt, false);
  EXPECT_EQ(text["object"], "text_completion");
  EXPECT_EQ(text["choices"][0]["text"], "ab");
  EXPECT_EQ(text["choices"][0]["index"], 2);
  const json usage = UsageChunkJson(kMeta, "chat.completion.chunk", {4, 2, 0, 0});
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["total_tokens"], 6);
}

TEST(OpenAiResponseTest, CompletionLogprobsFormat) {
  auto tok = SmallTokenizer();
  std::vector<engine::LogprobResult> lps(2);
  lps[0].chosen = {0, -0.5f};
  lps[0].top = {{0, -0.5f}, {1, -1.5f}};
  lps[1].chosen = {3, -std::numeric_limits<float>::infinity()};
  int64_t offset = 4;
  const json j = CompletionLogprobsJson(*tok, lps, &offset);
  EXPECT_EQ(j["tokens"], json::parse(R"(["a", "<|im_end|>"])"));
  EXPECT_EQ(j["token_logprobs"], json::parse("[-0.5, -9999.0]"));
  EXPECT_EQ(j["top_logprobs"], json::parse(R"([{"a": -0.5, "b": -1.5}, {}])"));
  EXPECT_EQ(j["text_offset"], json::parse("[4, 5]"));
  EXPECT_EQ(offset, 5 + 10);

  int64_t echo_offset = 0;
  json all = EchoLogprobsJson(*tok, std::vector<int32_t>{1, 2}, &echo_offset);
  EXPECT_EQ(all["token_logprobs"], json::parse("[null, null]"));
  EXPECT_EQ(all["text_offset"], json::parse("[0, 1]"));
  AppendCompletionLogprobs(&all, j);
  EXPECT_EQ(all["tokens"], json::parse(R"(["b", "c", "a", "<|im_end|>"])"));
  EXPECT_EQ(all["text_offset"].size(), 4u);
}

TEST(OpenAiResponseTest, ChatLogprobsFormat) {
  auto tok = SmallTokenizer();
  std::vector<engine::LogprobResult> lps(1);
  lps[0].chosen = {2, -0.25f};
  lps[0].top = {{2, -0.25f}};
  EXPECT_EQ(ChatLogprobsContentJson(*tok, lps), json::parse(R"([{"token": "c", "logprob": -0.25,
      "bytes": [99], "top_logprobs": [{"token": "c", "logprob": -0.25, "bytes": [99]}]}])"));
}

TEST(OpenAiResponseTest, ErrorObjectsAndStatusMapping) {
  const ApiError bad = ApiErrorFromStatus(InvalidParam("top_p", "'top_p' must be in (0, 1]"));
  EXPECT_EQ(bad.http_status, 400);
  EXPECT_EQ(ApiErrorJson(bad), json::parse(R"({"error": {"message": "'top_p' must be in (0, 1]",
      "type": "invalid_request_error", "param": "top_p", "code": null}})"));
  EXPECT_EQ(ApiErrorFromStatus(absl::UnauthenticatedError("x")).http_status, 401);
  EXPECT_EQ(ApiErrorFromStatus(absl::UnauthenticatedError("x")).code, "invalid_api_key");
  const ApiError missing = ApiErrorFromStatus(WithParam(absl::NotFoundError("no"), "model"));
  EXPECT_EQ(missing.http_status, 404);
  EXPECT_EQ(missing.code, "model_not_found");
  EXPECT_EQ(ApiErrorFromStatus(absl::ResourceExhaustedError("full")).http_status, 429);
  const ApiError too_big = ApiErrorFromStatus(engine::KvCapacityError("needs 9 of 4 pages"));
  EXPECT_EQ(too_big.http_status, 413);
  EXPECT_EQ(too_big.code, "kv_capacity_exceeded");
  EXPECT_EQ(too_big.message, "needs 9 of 4 pages");
  EXPECT_EQ(ApiErrorFromStatus(absl::UnavailableError("bye")).http_status, 503);
  EXPECT_EQ(ApiErrorFromStatus(absl::DeadlineExceededError("slow")).http_status, 504);
  EXPECT_EQ(ApiErrorFromStatus(absl::InternalError("bug")).http_status, 500);
  EXPECT_EQ(ApiErrorFromStatus(absl::InternalError("bug")).type, "server_error");
  EXPECT_EQ(MakeApiError(413, "big").type, "invalid_request_error");
}

}  // namespace
}  // namespace restkv::server
