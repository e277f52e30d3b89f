#include "engine/tokenizer/pretokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace restkv::engine {
namespace {

using Words = std::vector<std::string>;

Words Split(PreTokenizerKind kind, std::string_view text) { return PreTokenizer(kind).Split(text); }

TEST(PreTokenizerTest, Gpt2KeepsOneSpaceForTheNextWord) {
  EXPECT_EQ(Split(PreTokenizerKind::kGpt2, "Hello world  foo"),
            (Words{"Hello", " world", " ", " foo"}));
  EXPECT_EQ(Split(PreTokenizerKind::kGpt2, "it's 2024!!\n"),
            (Words{"it", "'s", " 2024", "!!", "\n"}));
  EXPECT_EQ(Split(PreTokenizerKind::kGpt2, "trailing  "), (Words{"trailing", "  "}));
  // Contractions are case-sensitive in the GPT-2 pattern.
  EXPECT_EQ(Split(PreTokenizerKind::kGpt2, "IT'S"), (Words{"IT", "'", "S"}));
}

TEST(PreTokenizerTest, Gpt2UsesUnicodeCategories) {
  EXPECT_EQ(Split(PreTokenizerKind::kGpt2, "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80"),
            (Words{"caf\xC3\xA9", " \xE6\x97\xA5\xE6\x9C\xAC", " \xF0\x9F\x98\x80"}));
  // U+00A0 is whitespace: "\s+(?!\S)" leaves it for nothing, so it stands alone.
  EXPECT_EQ(Split(PreTokenizerKind::kGpt2,
                  "a\xC2\xA0"
                  "b"),
            (Words{"a", "\xC2\xA0", "b"}));
}

TEST(PreTokenizerTest, SmolLMSplitsEveryDigitFirst) {
  // The \p{N} pass isolates digits, so " 123" loses its space to a fragment
  // of its own before the GPT-2 pass runs.
  EXPECT_EQ(Split(PreTokenizerKind::kDigitsThenGpt2, "ab 123"), (Words{"ab", " ", "1", "2", "3"}));
  EXPECT_EQ(Split(PreTokenizerKind::kDigitsThenGpt2, "x1y"), (Words{"x", "1", "y"}));
}

TEST(PreTokenizerTest, Llama3GroupsDigitsByThreeAndNewlines) {
  EXPECT_EQ(Split(PreTokenizerKind::kLlama3, "I'm 12345 ok\n\n  x"),
            (Words{"I", "'m", " ", "123", "45", " ok", "\n\n", " ", " x"}));
  // Contractions are case-insensitive; a punctuation run takes trailing newlines.
  EXPECT_EQ(Split(PreTokenizerKind::kLlama3, "IT'S done.\n\nNext"),
            (Words{"IT", "'S", " done", ".\n\n", "Next"}));
  // Any single non-letter, non-digit, non-newline may lead a word.
  EXPECT_EQ(Split(PreTokenizerKind::kLlama3, "\tfoo_bar"), (Words{"\tfoo", "_bar"}));
}

TEST(PreTokenizerTest, Qwen2SplitsSingleDigits) {
  EXPECT_EQ(Split(PreTokenizerKind::kQwen2, "x 12345"), (Words{"x", " ", "1", "2", "3", "4", "5"}));
}

TEST(PreTokenizerTest, DefaultSplitsPunctuationThenDigitTriples) {
  EXPECT_EQ(Split(PreTokenizerKind::kDefault, "a+b=12345"),
            (Words{"a", "+", "b", "=", "123", "45"}));
}

TEST(PreTokenizerTest, InvalidUtf8BecomesReplacementChar) {
  EXPECT_EQ(Split(PreTokenizerKind::kGpt2, "ab\xFF"), (Words{"ab", "\xEF\xBF\xBD"}));
  EXPECT_TRUE(Split(PreTokenizerKind::kGpt2, "").empty());
}

TEST(PreTokenizerTest, ConfigFromName) {
  auto smollm = PreTokenizerConfigFromName("smollm");
  ASSERT_TRUE(smollm.ok());
  EXPECT_EQ(smollm->kind, PreTokenizerKind::kDigitsThenGpt2);
  auto llama3 = PreTokenizerConfigFromName("llama-bpe");
  ASSERT_TRUE(llama3.ok());
  EXPECT_EQ(llama3->kind, PreTokenizerKind::kLlama3);
  EXPECT_TRUE(llama3->ignore_merges);
  EXPECT_TRUE(llama3->default_add_bos);
  EXPECT_EQ(PreTokenizerConfigFromName("")->kind, PreTokenizerKind::kDefault);
  const auto bad = PreTokenizerConfigFromName("klingon");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("klingon"), std::string::npos);
}

}  // namespace
}  // namespace restkv::engine
