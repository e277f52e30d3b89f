#include "eval/ruler_tasks.h"

#include <map>
#include <regex>

#include "eval/scoring.h"
#include "eval/test_model.h"
#include "gtest/gtest.h"

namespace restkv::eval {
namespace {

int Count(const std::string& text, const std::string& word) {
  int n = 0;
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}

class RulerTasksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TaskResources r;
    r.essay = *LoadHaystack("noise");
    r.essay.name = "essay";
    r.essay.sentences = {"Software is free when users may run it.",
                         "The licence protects that freedom.", "Copies may be shared with others."};
    r.noise = *LoadHaystack("noise");
    for (int i = 0; i < 400; ++i) {
      std::string w;
      for (int x = i + 1000; x > 0; x /= 26) w.push_back(static_cast<char>('a' + x % 26));
      r.words.push_back(w);
    }
    res_ = std::move(r);
  }
  const engine::Tokenizer& tok() { return m_.model().tokenizer(); }
  TestModel m_{"ruler", 1};
  TaskResources res_;
};

TEST_F(RulerTasksTest, EveryTaskFitsIsDeterministicAndHasItsAnswersInThePrompt) {
  for (const std::string& task : RulerTaskNames()) {
    // cwe's 300 common-word items alone need ~3k tokens of this byte-level tokenizer.
    const int len = task == "cwe" ? 4500 : 1500;
    auto a = MakeRulerSample(task, tok(), res_, len, 0, 3, 0);
    ASSERT_TRUE(a.ok()) << task << ": " << a.status();
    auto b = MakeRulerSample(task, tok(), res_, len, 0, 3, 0);
    auto c = MakeRulerSample(task, tok(), res_, len, 0, 3, 1);
    EXPECT_EQ(a->prompt, b->prompt) << task;
    EXPECT_NE(a->prompt, c->prompt) << task;
    EXPECT_EQ(a->max_tokens, RulerMaxTokens(task));
    EXPECT_LE(static_cast<int>(a->tokens.size()), len - a->max_tokens) << task;
    EXPECT_GT(static_cast<int>(a->tokens.size()), len - a->max_tokens - 40) << task;
    ASSERT_FALSE(a->answers.empty());
    // Every reference is in the context, so a perfect reader can score 1.
    const std::string answer_text = [&] {
      std::string s;
      for (const auto& x : a->answers) s += x + " ";
      return s;
    }();
    EXPECT_EQ(StringMatchAll(answer_text, a->answers), 1.0);
    for (const std::string& ref : a->answers)
      EXPECT_NE(a->prompt.find(ref), std::string::npos) << task << " " << ref;
  }
}

TEST_F(RulerTasksTest, NiahVariantsHaveTheirShapes) {
  auto mv = *MakeRulerSample("niah_multivalue", tok(), res_, 1200, 0, 1, 0);
  EXPECT_EQ(mv.answers.size(), 4u);
  auto mq = *MakeRulerSample("niah_multiquery", tok(), res_, 1200, 0, 1, 0);
  EXPECT_EQ(mq.answers.size(), 4u);
  EXPECT_NE(mq.prompt.find(", and "), std::string::npos);
  auto s3 = *MakeRulerSample("niah_single_3", tok(), res_, 1200, 0, 1, 0);
  EXPECT_TRUE(std::regex_match(
      s3.answers[0],
      std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
  auto mk2 = *MakeRulerSample("niah_multikey_2", tok(), res_, 1200, 0, 1, 0);
  EXPECT_GT(Count(mk2.prompt, "One of the special magic numbers for"), 10);  // distractor needles
  EXPECT_TRUE(mk2.prompt.ends_with("mentioned in the provided text are"));
}

TEST_F(RulerTasksTest, VariableTrackingChainAndCommonWordCounts) {
  auto vt = *MakeRulerSample("vt", tok(), res_, 1000, 0, 2, 0);
  ASSERT_EQ(vt.answers.size(), 5u);
  for (size_t i = 1; i < vt.answers.size(); ++i) {
    EXPECT_NE(vt.prompt.find("VAR " + vt.answers[i] + " = VAR " + vt.answers[i - 1] + "."),
              std::string::npos);
  }
  auto cwe = *MakeRulerSample("cwe", tok(), res_, 4500, 0, 2, 0);
  ASSERT_EQ(cwe.answers.size(), 10u);
  for (const std::string& w : cwe.answers) {
    EXPECT_EQ(Count(cwe.prompt, ". " + w + " ") + Count(cwe.prompt, ". " + w + "\n"), 30) << w;
  }
  auto fwe = *MakeRulerSample("fwe", tok(), res_, 1500, 0, 2, 0);
  ASSERT_EQ(fwe.answers.size(), 3u);
  EXPECT_GE(Count(fwe.prompt, " " + fwe.answers[0]), Count(fwe.prompt, " " + fwe.answers[2]));
}

TEST_F(RulerTasksTest, UnknownTaskAndTooShort) {
  EXPECT_EQ(MakeRulerSample("qa_1", tok(), res_, 1000, 0, 1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeRulerSample("niah_single_1", tok(), res_, 150, 0, 1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace restkv::eval
