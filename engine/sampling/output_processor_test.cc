#include "engine/sampling/output_processor.h"

#include <gtest/gtest.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "engine/tokenizer/tiny_vocab_testutil.h"

namespace restkv::engine {
namespace {

constexpr int32_t kEos = kByteTokenizerEos;

struct Outcome {
  std::string text;
  int32_t accepted = 0;
  std::optional<FinishReason> reason;
  std::string stop_string;
  int32_t pushed = 0;
};

// Pushes `tokens` until the processor says the sequence ended.
Outcome Feed(const Tokenizer& tok, const SamplingParams& p, int32_t prompt, int32_t max_total,
             const std::vector<int32_t>& tokens) {
  OutputProcessor out(tok, p, prompt, max_total);
  Outcome r;
  for (int32_t t : tokens) {
    OutputProcessor::Update u = out.Push(t);
    ++r.pushed;
    r.text += u.text;
    r.accepted += u.accepted ? 1 : 0;
    if (u.finished) {
      r.reason = u.finished;
      r.stop_string = u.stop_string;
      break;
    }
  }
  EXPECT_EQ(out.num_output(), r.accepted);
  return r;
}

std::vector<int32_t> Bytes(const std::string& s) {
  std::vector<int32_t> ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}

TEST(OutputProcessorTest, EosEndsWithStopAndIsNotOutput) {
  auto tok = ByteTokenizer();
  SamplingParams p;
  p.max_tokens = 10;
  std::vector<int32_t> ids = Bytes("ab");
  ids.push_back(kEos);
  ids.push_back('c');
  const Outcome r = Feed(*tok, p, 3, 100, ids);
  EXPECT_EQ(r.reason, FinishReason::kStop);
  EXPECT_EQ(r.text, "ab");
  EXPECT_EQ(r.accepted, 2);
  EXPECT_EQ(r.pushed, 3);
}

TEST(OutputProcessorTest, IgnoreEosKeepsGoingUntilMaxTokens) {
  auto tok = ByteTokenizer();
  SamplingParams p;
  p.max_tokens = 3;
  p.ignore_eos = true;
  const Outcome r = Feed(*tok, p, 3, 100, {'a', kEos, 'b', 'c'});
  EXPECT_EQ(r.reason, FinishReason::kLength);
  EXPECT_EQ(r.accepted, 3);
}

TEST(OutputProcessorTest, StopTokenIdEndsLikeEos) {
  auto tok = ByteTokenizer();
  SamplingParams p;
  p.max_tokens = 10;
  p.stop_token_ids = {'x'};
  const Outcome r = Feed(*tok, p, 3, 100, Bytes("abxd"));
  EXPECT_EQ(r.reason, FinishReason::kStop);
  EXPECT_EQ(r.text, "ab");
}

TEST(OutputProcessorTest, StopStringCutsTheTextAndIsReported) {
  auto tok = ByteTokenizer();
  SamplingParams p;
  p.max_tokens = 20;
  p.stop = {"END"};
  const Outcome r = Feed(*tok, p, 3, 100, Bytes("hi ENDmore"));
  EXPECT_EQ(r.reason, FinishReason::kStop);
  EXPECT_EQ(r.stop_string, "END");
  EXPECT_EQ(r.text, "hi ");
  EXPECT_EQ(r.pushed, 6);
}

TEST(OutputProcessorTest, MaxTokensEndsWithLengthAndFlushesHeldText) {
  auto tok = ByteTokenizer();
  SamplingParams p;
  p.max_tokens = 4;
  p.stop = {"abcX"};  // "abc" is held back as a possible stop string, then flushed
  const Outcome r = Feed(*tok, p, 3, 100, Bytes("zabcd"));
  EXPECT_EQ(r.reason, FinishReason::kLength);
  EXPECT_EQ(r.text, "zabc");
  EXPECT_EQ(r.pushed, 4);
}

TEST(OutputProcessorTest, TheContextEndsTheSequenceBeforeMaxTokens) {
  auto tok = ByteTokenizer();
  SamplingParams p;
  p.max_tokens = 50;
  // prompt 7 of a 10-token context: three output tokens fit.
  const Outcome r = Feed(*tok, p, 7, 10, Bytes("abcdef"));
  EXPECT_EQ(r.reason, FinishReason::kLength);
  EXPECT_EQ(r.accepted, 3);
  EXPECT_EQ(r.text, "abc");
}

TEST(OutputProcessorTest, AStopStringCompletedByTheLastTokenIsStopNotLength) {
  auto tok = ByteTokenizer();
  SamplingParams p;
  p.max_tokens = 3;
  p.stop = {"bc"};
  const Outcome r = Feed(*tok, p, 3, 100, Bytes("abc"));
  EXPECT_EQ(r.reason, FinishReason::kStop);
  EXPECT_EQ(r.stop_string, "bc");
  EXPECT_EQ(r.text, "a");
}

TEST(OutputProcessorTest, ASplitUtf8CharacterIsHeldUntilComplete) {
  auto tok = ByteTokenizer();
  SamplingParams p;
  p.max_tokens = 10;
  OutputProcessor out(*tok, p, 3, 100);
  const std::string euro = "\xE2\x82\xAC";
  EXPECT_EQ(out.Push(static_cast<unsigned char>(euro[0])).text, "");
  EXPECT_EQ(out.Push(static_cast<unsigned char>(euro[1])).text, "");
  EXPECT_EQ(out.Push(static_cast<unsigned char>(euro[2])).text, euro);
}

TEST(OutputProcessorTest, TheEndTokenIsCountedButNotOutput) {
  auto tok = ByteTokenizer();
  SamplingParams p;
  p.max_tokens = 10;
  OutputProcessor out(*tok, p, 3, 100);
  out.Push('a');
  const OutputProcessor::Update u = out.Push(kEos);
  EXPECT_FALSE(u.accepted);
  EXPECT_EQ(out.num_output(), 1);
  EXPECT_EQ(out.num_generated(), 2);  // vLLM's completion_tokens
  EXPECT_EQ(u.stop_token_id, -1);     // the model's EOS: stop_reason null
}

TEST(OutputProcessorTest, AStopTokenIdIsReportedAndCounted) {
  auto tok = ByteTokenizer();
  SamplingParams p;
  p.max_tokens = 10;
  p.stop_token_ids = {'x'};
  OutputProcessor out(*tok, p, 3, 100);
  out.Push('a');
  const OutputProcessor::Update u = out.Push('x');
  EXPECT_EQ(u.finished, FinishReason::kStop);
  EXPECT_EQ(u.stop_token_id, 'x');
  EXPECT_EQ(u.text, "");
  EXPECT_EQ(out.num_generated(), 2);
  // A length ending counts no end token.
  SamplingParams q;
  q.max_tokens = 2;
  OutputProcessor len(*tok, q, 3, 100);
  len.Push('a');
  EXPECT_EQ(len.Push('b').finished, FinishReason::kLength);
  EXPECT_EQ(len.num_generated(), 2);
}

TEST(OutputProcessorTest, IncludeStopStrInOutputKeepsTheStopStringAndToken) {
  auto tok = ByteTokenizer();
  SamplingParams p;
  p.max_tokens = 10;
  p.stop = {"bc"};
  p.include_stop_str_in_output = true;
  Outcome r = Feed(*tok, p, 3, 100, Bytes("abcd"));
  EXPECT_EQ(r.text, "abc");
  EXPECT_EQ(r.stop_string, "bc");
  p.stop.clear();
  p.stop_token_ids = {'x'};
  r = Feed(*tok, p, 3, 100, Bytes("axd"));
  EXPECT_EQ(r.text, "ax");
  EXPECT_EQ(r.reason, FinishReason::kStop);
  // The EOS is a control token: it gives text only with skip_special_tokens off.
  p.stop_token_ids.clear();
  r = Feed(*tok, p, 3, 100, {'a', kEos});
  EXPECT_EQ(r.text, "a");
  p.skip_special_tokens = false;
  r = Feed(*tok, p, 3, 100, {'a', kEos});
  EXPECT_EQ(r.text, "a <|im_end|>");
  p.spaces_between_special_tokens = false;
  r = Feed(*tok, p, 3, 100, {'a', kEos});
  EXPECT_EQ(r.text, "a<|im_end|>");
}

TEST(OutputProcessorTest, MinTokensMasksEndTokensAndDefersStopStrings) {
  auto tok = ByteTokenizer();
  SamplingParams p;
  p.max_tokens = 10;
  p.min_tokens = 3;
  p.stop = {"a"};
  p.stop_token_ids = {'z'};
  OutputProcessor out(*tok, p, 3, 100);
  std::vector<float> logits(tok->vocab_size(), 0.0f);
  out.SuppressEnd(absl::MakeSpan(logits));
  EXPECT_EQ(logits[kEos], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(logits['z'], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(logits['a'], 0.0f);
  // "a" is a stop string, but not within the first min_tokens tokens.
  EXPECT_EQ(out.Push('a').text, "a");
  EXPECT_EQ(out.Push('a').text, "a");
  EXPECT_FALSE(out.Push('a').finished);
  std::vector<float> after(tok->vocab_size(), 0.0f);
  out.SuppressEnd(absl::MakeSpan(after));  // 3 tokens out: nothing masked
  EXPECT_EQ(after[kEos], 0.0f);
  const OutputProcessor::Update u = out.Push('a');
  EXPECT_EQ(u.finished, FinishReason::kStop);
  EXPECT_EQ(u.stop_string, "a");
}

TEST(OutputProcessorTest, MinTokensNeverMasksEveryToken) {
  auto tok = ByteTokenizer();
  SamplingParams p;
  p.max_tokens = 10;
  p.min_tokens = 2;
  OutputProcessor out(*tok, p, 3, 100);
  // A grammar allowing only the EOS: masking it would leave nothing to sample.
  std::vector<float> logits(tok->vocab_size(), -std::numeric_limits<float>::infinity());
  logits[kEos] = 1.0f;
  out.SuppressEnd(absl::MakeSpan(logits));
  EXPECT_EQ(logits[kEos], 1.0f);
}

}  // namespace
}  // namespace restkv::engine
