#include "engine/eviction/adakv.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "engine/eviction/policy_config.h"
#include "engine/eviction/select.h"
#include "engine/eviction/token_selection.h"

namespace restkv::engine {
namespace {

using ::testing::ElementsAre;

// Spec §7.7: H = 2, 8 candidates, b = 5, floor 0.2 -> floor_c = 1.
// rho = [0.940594, 0.694915]; the top 10 of the scaled sorted scores give
// counts [3, 7] (boundary 0.056436 vs 0.055593); round(c * 0.8 + 1) = [3, 7].
const std::vector<float> kScores = {0.50f, 0.30f, 0.06f, 0.04f, 0.03f, 0.02f, 0.01f, 0.05f,
                                    0.12f, 0.11f, 0.10f, 0.13f, 0.09f, 0.08f, 0.14f, 0.115f};

TEST(AdaKv, WorkedCase) {
  EXPECT_THAT(AdaKvCounts(kScores.data(), 2, 8, 8, 5, true, 100), ElementsAre(3, 7));
  // The kept candidates of each head (its own top c_h).
  std::vector<float> scratch;
  EXPECT_THAT(KeepTopCandidates(kScores.data(), 8, 0, 3, &scratch), ElementsAre(0, 1, 2));
  EXPECT_THAT(KeepTopCandidates(kScores.data() + 8, 8, 0, 7, &scratch),
              ElementsAre(0, 1, 2, 3, 4, 6, 7));
}

TEST(AdaKv, WithoutNormalisationTheConcentratedHeadWinsMore) {
  // Raw scores pooled: top 10 = .50 .30 .14 .13 .12 .115 .11 .10 .09 .08,
  // counts [2, 8]; round(2*.8+1) = 3 (2.6), round(8*.8+1) = 7 (7.4).
  EXPECT_THAT(AdaKvCounts(kScores.data(), 2, 8, 8, 5, false, 100), ElementsAre(3, 7));
  // The floor keeps a head alive: b = 10 of 8 candidates, floor_c = 2,
  // every candidate taken (8 + 8): round(8*.8+2) = 8 (8.4), capped at M.
  EXPECT_THAT(AdaKvCounts(kScores.data(), 2, 8, 8, 10, true, 100), ElementsAre(8, 8));
}

TEST(AdaKv, CapBoundsEveryHead) {
  EXPECT_THAT(AdaKvCounts(kScores.data(), 2, 8, 8, 5, true, 6), ElementsAre(3, 6));
}

TEST(AdaKv, SelectTokensGivesPerHeadLengthsWithinTheBound) {
  // One KV head per query head, window 2, B = 7, N = 20: K_l = 5, the
  // padded bound min(M, 2 * 5) + 2 = 12.
  KvPolicyConfig config;
  config.kind = KvPolicyKind::kSnapKv;
  config.budget = 7;
  config.window = 2;
  config.pooling = PoolingMode::kNone;
  config.adaptive = AdaptiveBudget::kAdaKv;
  ASSERT_TRUE(config.Validate().ok());
  constexpr int32_t n = 20, d = 2;
  EXPECT_EQ(KeptTokensForLayer(config, 0, 1, n), 12);
  EXPECT_EQ(UniformCandidates(config, 0, 1, n), 5);
  // Head 0's keys: one key (5) aligned with the queries, the rest opposite;
  // head 1's keys all alike. Head 0's attention concentrates, head 1's not.
  std::vector<float> k(2 * n * d), v(2 * n * d, 0.5f), q(2 * 2 * d);
  for (int32_t t = 0; t < n; ++t) {
    k[t * d] = t == 5 ? 8.0f : -1.0f;
    k[(n + t) * d] = 0.1f;
  }
  for (int32_t r = 0; r < 2; ++r) {
    q[(r * 2 + 0) * d] = 1.0f;
    q[(r * 2 + 1) * d] = 1.0f;
  }
  LayerScoringInput in;
  in.num_tokens = n;
  in.num_heads = 2;
  in.num_kv_heads = 2;
  in.head_dim = d;
  in.num_queries = 2;
  in.q_window = q.data();
  in.k = k.data();
  in.v = v.data();
  const auto keep = SelectTokens(config, 0, 1, in, nullptr);
  ASSERT_EQ(keep.size(), 2u);
  // Head 0 concentrates on key 5: rho_0 ~ 1, head 1 is flat: rho_1 = 5/18.
  // Pooled top 10: head 0's key 5, then ten of head 1's equal scores (ties
  // to the lower head, so head 0 has no second), c' = [1, 9];
  // round(1.8) = 2, round(8.2) = 8; plus the window of 2.
  EXPECT_EQ(keep[0].size(), 4u);
  EXPECT_EQ(keep[1].size(), 10u);
  EXPECT_EQ(keep[0].back(), n - 1);
  EXPECT_EQ(keep[1].back(), n - 1);
  EXPECT_THAT(keep[0], ::testing::Contains(5));
  // Policies without candidate scores refuse it.
  config.kind = KvPolicyKind::kTova;
  EXPECT_FALSE(config.Validate().ok());
}

}  // namespace
}  // namespace restkv::engine
