#include "engine/structured/grammar_matcher.h"

#include <random>

#include "engine/structured/structured_testutil.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace restkv::engine::structured {
namespace {

std::shared_ptr<const CompiledGrammar> Gbnf(const std::string& text,
                                            std::shared_ptr<const TokenVocabulary> v) {
  auto g = ParseGbnf(text);
  EXPECT_TRUE(g.ok()) << g.status();
  return std::make_shared<const CompiledGrammar>(std::move(*g), std::move(v));
}

bool Bit(const TokenBitmask& m, int32_t t) { return (m[t >> 6] >> (t & 63)) & 1; }

TEST(GrammarMatcherTest, TokensSpanningTerminalsAndEndOnlyWhereComplete) {
  // 0:'{"'  1:'a'  2:'"}'  3:'{'  4:'"'  5:'}'  6:'ab"'  7:end
  auto v = std::make_shared<const TokenVocabulary>(
      std::vector<std::string>{"{\"", "a", "\"}", "{", "\"", "}", "ab\"", ""},
      std::vector<int32_t>{7});
  auto g = Gbnf(R"(root ::= "{" "\"" [a-z]+ "\"" "}")", v);
  GrammarMatcher m(g);
  TokenBitmask mask;
  EXPECT_EQ(m.FillNextTokenMask(&mask), 2);
  EXPECT_TRUE(Bit(mask, 0));
  EXPECT_TRUE(Bit(mask, 3));
  EXPECT_FALSE(Bit(mask, 7)) << "end is not allowed before the grammar is complete";
  ASSERT_TRUE(m.AcceptToken(0));
  m.FillNextTokenMask(&mask);
  EXPECT_TRUE(Bit(mask, 1));
  EXPECT_TRUE(Bit(mask, 6));
  EXPECT_FALSE(Bit(mask, 2)) << "[a-z]+ needs one letter first";
  ASSERT_TRUE(m.AcceptToken(6));  // 'ab"' ends the letters and the string
  m.FillNextTokenMask(&mask);
  EXPECT_TRUE(Bit(mask, 5));
  EXPECT_FALSE(Bit(mask, 1));
  EXPECT_FALSE(m.CanEnd());
  ASSERT_TRUE(m.AcceptToken(5));
  EXPECT_TRUE(m.IsTerminated());
  EXPECT_EQ(m.FillNextTokenMask(&mask), 1);
  EXPECT_TRUE(Bit(mask, 7));
  EXPECT_FALSE(m.AcceptToken(5));
}

TEST(GrammarMatcherTest, Utf8SplitAcrossTokens) {
  // 0:'\xC3' 1:'\xA9' 2:'é' 3:'è' 4:end
  auto v = std::make_shared<const TokenVocabulary>(
      std::vector<std::string>{"\xC3", "\xA9", "\xC3\xA9", "\xC3\xA8", ""},
      std::vector<int32_t>{4});
  auto g = Gbnf(R"(root ::= [é]+)", v);
  GrammarMatcher m(g);
  TokenBitmask mask;
  m.FillNextTokenMask(&mask);
  EXPECT_TRUE(Bit(mask, 0));
  EXPECT_FALSE(Bit(mask, 1)) << "a continuation byte cannot start a character";
  EXPECT_TRUE(Bit(mask, 2));
  EXPECT_FALSE(Bit(mask, 3)) << "è is not in the class";
  ASSERT_TRUE(m.AcceptToken(0));
  EXPECT_FALSE(m.CanEnd()) << "half a character is not complete";
  m.FillNextTokenMask(&mask);
  EXPECT_TRUE(Bit(mask, 1));
  EXPECT_FALSE(Bit(mask, 0));
  ASSERT_TRUE(m.AcceptToken(1));
  EXPECT_TRUE(m.CanEnd());
  ASSERT_TRUE(m.AcceptToken(2));
  EXPECT_TRUE(m.CanEnd());
}

TEST(GrammarMatcherTest, StarLoopsDoNotGrowTheState) {
  auto g = Gbnf("root ::= \"[\" [a-z]* \"]\"", ByteVocab());
  GrammarMatcher m(g);
  ASSERT_TRUE(m.AcceptToken('['));
  TokenBitmask first, later;
  m.FillNextTokenMask(&first);
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(m.AcceptToken('a' + i % 26));
  m.FillNextTokenMask(&later);
  EXPECT_EQ(first, later);
  ASSERT_TRUE(m.AcceptToken(']'));
  EXPECT_TRUE(m.IsTerminated());
}

// The trie walk (with its memo) must allow exactly the tokens that
// AcceptToken accepts one by one, along random walks of a JSON grammar over
// a vocabulary of random multi-byte tokens.
TEST(GrammarMatcherTest, MaskEqualsTokenByTokenAcceptance) {
  std::mt19937 rng(5);
  const std::string alphabet = "{}[]\",: abc01-.e\\nu\xC3\xA9";
  std::vector<std::string> extra;
  for (int i = 0; i < 400; ++i) {
    std::string t;
    const int len = 2 + static_cast<int>(rng() % 5);
    for (int k = 0; k < len; ++k) t.push_back(alphabet[rng() % alphabet.size()]);
    extra.push_back(t);
  }
  auto v = ByteVocab(extra);
  GrammarCompiler compiler(v);
  auto g = compiler.Compile({GrammarKind::kJsonObject, "", {}});
  ASSERT_TRUE(g.ok()) << g.status();
  for (int walk = 0; walk < 8; ++walk) {
    GrammarMatcher m(*g);
    for (int step = 0; step < 40; ++step) {
      TokenBitmask mask;
      const int32_t n = m.FillNextTokenMask(&mask);
      ASSERT_GT(n, 0);
      std::vector<int32_t> allowed;
      for (int32_t t = 0; t < v->vocab_size(); ++t) {
        GrammarMatcher copy = m;
        ASSERT_EQ(Bit(mask, t), copy.AcceptToken(t))
            << "walk " << walk << " step " << step << " token " << t;
        if (Bit(mask, t)) allowed.push_back(t);
      }
      const int32_t pick = allowed[rng() % allowed.size()];
      if (pick == v->vocab_size() - 1) break;  // the end token
      ASSERT_TRUE(m.AcceptToken(pick));
    }
  }
}

TEST(GrammarMatcherTest, AnAmbiguousGrammarIsReportedNotUnbounded) {
  // After n x's, any number of pending "y"s up to n is possible: n stacks.
  auto g = Gbnf("root ::= a\na ::= \"x\" a \"y\" | \"x\" a | \"\"", ByteVocab());
  GrammarMatcher m(g);
  int n = 0;
  while (!m.TooAmbiguous() && n < 5000) {
    ASSERT_TRUE(m.AcceptToken('x'));
    ++n;
  }
  EXPECT_TRUE(m.TooAmbiguous());
  EXPECT_GT(n, 100);
  EXPECT_LE(n, GrammarMatcher::kMaxStacks + 1);
  // An unambiguous loop stays at one stack however long it runs.
  GrammarMatcher list(Gbnf("root ::= \"[\" ( [0-9] \",\" )* \"]\"", ByteVocab()));
  ASSERT_TRUE(list.AcceptToken('['));
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(list.AcceptToken(i % 2 == 0 ? '7' : ','));
  EXPECT_FALSE(list.TooAmbiguous());
}

TEST(GrammarMatcherTest, StopTokenIdsAreEndTokens) {
  auto v = ByteVocab();
  auto g = Gbnf("root ::= \"ab\"", v);
  GrammarMatcher m(g, {'x'});
  TokenBitmask mask;
  m.FillNextTokenMask(&mask);
  EXPECT_FALSE(Bit(mask, 'x'));
  ASSERT_TRUE(m.AcceptToken('a'));
  ASSERT_TRUE(m.AcceptToken('b'));
  m.FillNextTokenMask(&mask);
  EXPECT_TRUE(Bit(mask, 'x'));
}

TEST(GrammarMatcherTest, ApplyTokenMaskClearsMaskedAndPaddedLogits) {
  TokenBitmask mask(1, 0b101);
  std::vector<float> logits{1, 2, 3, 4};
  ApplyTokenMask(mask, 3, absl::MakeSpan(logits));
  EXPECT_EQ(logits[0], 1);
  EXPECT_TRUE(std::isinf(logits[1]));
  EXPECT_EQ(logits[2], 3);
  EXPECT_TRUE(std::isinf(logits[3])) << "past the grammar's vocabulary";
}

}  // namespace
}  // namespace restkv::engine::structured
