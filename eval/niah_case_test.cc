#include "eval/niah_case.h"

#include "eval/haystack.h"
#include "eval/haystack_prompt.h"
#include "eval/test_model.h"
#include "gtest/gtest.h"

namespace restkv::eval {
namespace {

TEST(HaystackTest, SplitsSentencesAndCollapsesWhitespace) {
  const auto s = SplitSentences("One  two.\nThree?  Four!Five. Six");
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0], "One two.");
  EXPECT_EQ(s[1], "Three?");
  EXPECT_EQ(s[2], "Four!Five.");
  EXPECT_EQ(s[3], "Six");
}

TEST(HaystackTest, NoiseAndMissingFile) {
  auto noise = LoadHaystack("noise");
  ASSERT_TRUE(noise.ok());
  EXPECT_EQ(noise->sentences.size(), 5u);
  EXPECT_EQ(LoadHaystack("/nonexistent/haystack.txt").status().code(), absl::StatusCode::kNotFound);
}

class NiahCaseTest : public ::testing::Test {
 protected:
  TestModel m_{"niah"};
  const engine::Tokenizer& tok() { return m_.model().tokenizer(); }
};

TEST_F(NiahCaseTest, DeterministicForASeedAndDifferentAcrossSeeds) {
  auto h = *LoadHaystack("noise");
  auto a = *MakeNiahCase(tok(), h, 600, 0.5, 7);
  auto b = *MakeNiahCase(tok(), h, 600, 0.5, 7);
  auto c = *MakeNiahCase(tok(), h, 600, 0.5, 8);
  EXPECT_EQ(a.prompt, b.prompt);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_NE(a.value, c.value);
  EXPECT_EQ(a.value.size(), 7u);
  EXPECT_LE(a.tokens.size(), 600u);
  EXPECT_GT(a.tokens.size(), 560u);  // filled to within a sentence or two
  EXPECT_NE(a.prompt.find(a.needle), std::string::npos);
  EXPECT_NE(a.prompt.find("special magic number for " + a.key + " mentioned"), std::string::npos);
}

TEST_F(NiahCaseTest, NeedleSitsAtTheRequestedDepthWithinOneSentence) {
  Haystack h;
  h.name = "test";
  h.sentences = {"Alpha beta gamma delta.", "The quick brown fox jumps over it.",
                 "Rain falls softly."};
  int32_t longest = 0;
  for (const auto& s : h.sentences) {
    longest = std::max<int32_t>(longest, tok().Encode(" " + s, false, false).size());
  }
  const std::string prefix = "P:\n", suffix = "\nQ?";
  for (double depth : {0.0, 0.1, 0.25, 0.5, 0.77, 1.0}) {
    auto built = BuildHaystackPrompt(tok(), h, prefix, {{"NEEDLE SENTENCE.", depth}}, suffix, 900);
    ASSERT_TRUE(built.ok()) << built.status();
    const std::string& t = built->text;
    const size_t at = t.find("NEEDLE SENTENCE.");
    ASSERT_NE(at, std::string::npos);
    // Needle at a sentence boundary: preceded by the prefix or a sentence end.
    ASSERT_TRUE(at == prefix.size() || t.substr(at - 2, 2) == ". ") << depth;
    const std::string ctx = t.substr(prefix.size(), t.size() - prefix.size() - suffix.size());
    const size_t in_ctx = at - prefix.size();
    const double before = tok().Encode(ctx.substr(0, in_ctx), false, false).size();
    const double total = tok().Encode(ctx, false, false).size() -
                         tok().Encode("NEEDLE SENTENCE.", false, false).size();
    EXPECT_NEAR(before / total, depth, (longest + 2) / total) << depth;
  }
}

TEST_F(NiahCaseTest, RejectsBadDepthAndTooShortTarget) {
  auto h = *LoadHaystack("noise");
  EXPECT_EQ(BuildHaystackPrompt(tok(), h, "p", {{"n", 1.5}}, "s", 100).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeNiahCase(tok(), h, 20, 0.5, 1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(NiahCaseTest, ScoreAcceptsTheValueAndRejectsNearMisses) {
  auto h = *LoadHaystack("noise");
  auto c = *MakeNiahCase(tok(), h, 400, 0.3, 1);
  EXPECT_EQ(ScoreNiah(c, " " + c.value + ".\n"), 1.0);
  EXPECT_EQ(ScoreNiah(c, " " + c.value.substr(0, 6)), 0.0);
}

}  // namespace
}  // namespace restkv::eval
