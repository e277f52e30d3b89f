#include "engine/eviction/lacache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "engine/eviction/policy_config.h"
#include "engine/eviction/token_selection.h"

namespace restkv::engine {
namespace {

using ::testing::ElementsAre;

// 6 layers, span 2, no overlap: group = 1 + ceil(4/2) = 3, one token of
// each group per layer, at offset layer % 3. Two sinks, two recent tokens.
constexpr LadderShape kShape{.sink = 2, .recent = 2, .span = 2, .overlap = 0};

TEST(LaCache, GroupShapeFollowsSpanAndOverlap) {
  EXPECT_EQ(LadderGroup(kShape, 6), 3);
  EXPECT_EQ(LadderPerLayer(kShape, 6), 1);
  // Llama-3-8B with the release's span 16: pairs, one token each.
  const LadderShape release{.span = 16, .overlap = 0};
  EXPECT_EQ(LadderGroup(release, 32), 2);
  EXPECT_EQ(LadderPerLayer(release, 32), 1);
  // Overlap 4 of span 8 on 30 layers: group 1 + ceil(22/4) = 7, per layer 2.
  const LadderShape overlapping{.span = 8, .overlap = 4};
  EXPECT_EQ(LadderGroup(overlapping, 30), 7);
  EXPECT_EQ(LadderPerLayer(overlapping, 30), 2);
  // A span covering every layer leaves nothing to ladder.
  EXPECT_EQ(LadderGroup(LadderShape{.span = 32}, 32), 1);
}

// N = 20, B = 10: one pass of ceil(10 / 2) = 5 groups over positions 2..16.
TEST(LaCache, OnePassWorkedExample) {
  EXPECT_THAT(LaCacheKeep(20, 10, kShape, 0, 6), ElementsAre(0, 1, 2, 5, 8, 11, 14, 17, 18, 19));
  EXPECT_THAT(LaCacheKeep(20, 10, kShape, 1, 6), ElementsAre(0, 1, 3, 6, 9, 12, 15, 17, 18, 19));
  EXPECT_THAT(LaCacheKeep(20, 10, kShape, 2, 6), ElementsAre(0, 1, 4, 7, 10, 13, 16, 17, 18, 19));
  EXPECT_EQ(LaCacheKeep(20, 10, kShape, 3, 6), LaCacheKeep(20, 10, kShape, 0, 6));
  EXPECT_EQ(LaCacheKeptCount(20, 10, kShape, 6), 10);
  // The ladder's point: three consecutive layers together hold every token.
  std::set<int32_t> covered;
  for (int32_t l = 0; l < 3; ++l) {
    for (int32_t t : LaCacheKeep(20, 10, kShape, l, 6)) covered.insert(t);
  }
  EXPECT_EQ(covered.size(), 20u);
}

// N = 20, B = 7: the first pass leaves 10 entries, a second pass over the
// compacted list (entries 2..7, two groups) leaves 6 <= 7.
TEST(LaCache, IterativeCompactionWorkedExample) {
  EXPECT_THAT(LaCacheKeep(20, 7, kShape, 0, 6), ElementsAre(0, 1, 2, 11, 18, 19));
  EXPECT_THAT(LaCacheKeep(20, 7, kShape, 1, 6), ElementsAre(0, 1, 6, 15, 18, 19));
  EXPECT_THAT(LaCacheKeep(20, 7, kShape, 2, 6), ElementsAre(0, 1, 10, 17, 18, 19));
  EXPECT_EQ(LaCacheKeptCount(20, 7, kShape, 6), 6);
}

TEST(LaCache, FallsBackToSinksAndRecentWhenNoPassFits) {
  // B = 5 after the two passes above (6 entries, middle of 2 < one group).
  EXPECT_THAT(LaCacheKeep(20, 5, kShape, 0, 6), ElementsAre(0, 1, 11, 18, 19));
  EXPECT_EQ(LaCacheKeptCount(20, 5, kShape, 6), 5);
  // No ladder at all (span = layers): StreamingLLM's keep.
  const LadderShape flat{.sink = 2, .recent = 2, .span = 6, .overlap = 0};
  EXPECT_THAT(LaCacheKeep(20, 5, flat, 4, 6), ElementsAre(0, 1, 17, 18, 19));
  EXPECT_THAT(LaCacheKeep(4, 5, flat, 0, 6), ElementsAre(0, 1, 2, 3));
}

TEST(LaCache, CountMatchesListsOnManyShapes) {
  for (int32_t n : {33, 100, 257, 1000}) {
    for (int32_t b : {1, 3, 8, 40, 100, 300}) {
      for (LadderShape s : {LadderShape{}, LadderShape{.sink = 0, .recent = 0, .span = 3},
                            LadderShape{.sink = 4, .recent = 8, .span = 8, .overlap = 5}}) {
        const int32_t count = LaCacheKeptCount(n, b, s, 30);
        EXPECT_LE(count, b);
        for (int32_t l : {0, 7, 29}) {
          const std::vector<int32_t> keep = LaCacheKeep(n, b, s, l, 30);
          ASSERT_EQ(static_cast<int32_t>(keep.size()), count) << n << " " << b << " " << l;
          EXPECT_TRUE(std::is_sorted(keep.begin(), keep.end()));
          EXPECT_EQ(std::set<int32_t>(keep.begin(), keep.end()).size(), keep.size());
        }
      }
    }
  }
}

TEST(LaCache, PolicyKeepsTheLadderOnEveryKvHead) {
  KvPolicyConfig config;
  ASSERT_TRUE(
      ApplyKvPolicyOptions("budget=10,window=2,sink_tokens=2,span=2,overlap=0", &config).ok());
  config.kind = *ParseKvPolicy("lacache");
  ASSERT_TRUE(config.Validate().ok());
  EXPECT_EQ(KeptTokensForLayer(config, 1, 6, 20), 10);
  EXPECT_EQ(ScoringWindow(config, 20), 0);
  LayerScoringInput in;
  in.num_tokens = 20;
  in.num_heads = 4;
  in.num_kv_heads = 2;
  in.head_dim = 2;
  const auto keep = SelectTokens(config, 1, 6, in, nullptr);
  ASSERT_EQ(keep.size(), 2u);
  EXPECT_THAT(keep[0], ElementsAre(0, 1, 3, 6, 9, 12, 15, 17, 18, 19));
  EXPECT_EQ(keep[1], keep[0]);
  config.overlap = 2;
  EXPECT_FALSE(config.Validate().ok());
}

}  // namespace
}  // namespace restkv::engine
