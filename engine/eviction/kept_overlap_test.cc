#include "engine/eviction/kept_overlap.h"

#include "gtest/gtest.h"

namespace restkv::engine {
namespace {

TEST(KeptOverlapTest, JaccardOfOneHead) {
  EXPECT_DOUBLE_EQ(Jaccard({1, 2, 3}, {1, 2, 3}), 1.0);
  EXPECT_DOUBLE_EQ(Jaccard({1, 2, 3}, {2, 3, 4}), 0.5);  // {2,3} of {1,2,3,4}
  EXPECT_DOUBLE_EQ(Jaccard({1, 2}, {3, 4}), 0.0);
  EXPECT_DOUBLE_EQ(Jaccard({}, {}), 1.0);
  EXPECT_DOUBLE_EQ(Jaccard({5}, {}), 0.0);
}

TEST(KeptOverlapTest, MeanOverThePairsBothHold) {
  // Layer 0: 1 and 0.5; layer 1 (its second head missing in b): 0.
  const std::vector<std::vector<std::vector<int32_t>>> a = {{{1, 2}, {1, 2, 3}}, {{7}, {9}}};
  const std::vector<std::vector<std::vector<int32_t>>> b = {{{1, 2}, {2, 3, 4}}, {{8}}};
  EXPECT_DOUBLE_EQ(MeanJaccard(a, b), 1.5 / 3);
  EXPECT_DOUBLE_EQ(MeanJaccard(a, {}), 0.0);
}

}  // namespace
}  // namespace restkv::engine
