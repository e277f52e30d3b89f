#include "eval/scoring.h"

#include "gtest/gtest.h"

namespace restkv::eval {
namespace {

TEST(ScoringTest, MatchAllCountsEveryReference) {
  EXPECT_DOUBLE_EQ(StringMatchAll(" 7304921.", {"7304921"}), 1.0);
  EXPECT_DOUBLE_EQ(StringMatchAll("apple, Pear", {"apple", "pear", "plum", "fig"}), 0.5);
  EXPECT_DOUBLE_EQ(StringMatchAll("", {"x"}), 0.0);
  EXPECT_DOUBLE_EQ(StringMatchAll("anything", {}), 0.0);
}

TEST(ScoringTest, NearMissesDoNotMatch) {
  EXPECT_DOUBLE_EQ(StringMatchAll(" 730492.", {"7304921"}), 0.0);  // truncated number
  EXPECT_DOUBLE_EQ(StringMatchAll("7304-921", {"7304921"}), 0.0);
  EXPECT_DOUBLE_EQ(StringMatchPart("VAR ABCDE", {"ABCDF", "QWERT"}), 0.0);
}

TEST(ScoringTest, MatchPartNeedsOneReference) {
  EXPECT_DOUBLE_EQ(StringMatchPart("the answer is qwert", {"ABCDF", "QWERT"}), 1.0);
  EXPECT_DOUBLE_EQ(StringMatchPart("nothing", {"a1", "b2"}), 0.0);
}

}  // namespace
}  // namespace restkv::eval
