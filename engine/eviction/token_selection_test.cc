#include "engine/eviction/token_selection.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "common/thread_pool.h"
#include "engine/eviction/scores.h"
#include "engine/eviction/testdata.h"

namespace restkv::engine {
namespace {

namespace td = testdata;
using ::testing::ElementsAre;
using ::testing::IsSupersetOf;

KvPolicyConfig Policy(KvPolicyKind kind, int32_t budget, int32_t window) {
  KvPolicyConfig c;
  c.kind = kind;
  c.budget = budget;
  c.window = window;
  return c;
}

// §7.2 as a one-head layer.
class KvPolicyWorkedExampleTest : public ::testing::Test {
 protected:
  KvPolicyWorkedExampleTest() : factor_(ComputeWoFactor(td::kWo.data(), 3, 1, 2)) {
    in_.num_tokens = td::kN;
    in_.num_heads = 1;
    in_.num_kv_heads = 1;
    in_.head_dim = td::kD;
    in_.num_queries = td::kW;
    in_.q_window = td::kQueries.data();
    in_.k = td::kKeys.data();
    in_.v = td::kValues.data();
    in_.wo_factor = factor_.data();
  }
  std::vector<int32_t> Keep(const KvPolicyConfig& c) {
    EXPECT_TRUE(c.Validate().ok()) << c.Validate();
    auto keep = SelectTokens(c, 0, 1, in_, nullptr);
    EXPECT_EQ(keep.size(), 1u);
    return keep.empty() ? std::vector<int32_t>{} : keep[0];
  }
  std::vector<float> factor_;
  LayerScoringInput in_;
};

TEST_F(KvPolicyWorkedExampleTest, RestKvAdaptive) {
  KvPolicyConfig c = Policy(KvPolicyKind::kRestKv, 8, 4);
  EXPECT_THAT(Keep(c), ElementsAre(4, 5, 6, 7, 8, 9, 10, 11));  // beta 2000: k 5, sigma 0
  c.beta = 1.0f;
  EXPECT_THAT(Keep(c), ElementsAre(0, 5, 6, 7, 8, 9, 10, 11));  // k 5, sigma -2
  c.beta = 0.5f;
  EXPECT_THAT(Keep(c), ElementsAre(0, 5, 6, 7, 8, 9, 10, 11));  // k 11, sigma -5
}

TEST_F(KvPolicyWorkedExampleTest, RestKvUnsmoothedVariants) {
  KvPolicyConfig c = Policy(KvPolicyKind::kRestKv, 8, 4);
  c.pooling = PoolingMode::kNone;
  EXPECT_THAT(Keep(c), ElementsAre(0, 2, 5, 7, 8, 9, 10, 11));
  c.use_wo = false;
  EXPECT_THAT(Keep(c), ElementsAre(0, 2, 5, 7, 8, 9, 10, 11));
  c.use_wo = true;
  c.metric = MetricMode::kBefore;
  EXPECT_THAT(Keep(c), ElementsAre(0, 2, 5, 7, 8, 9, 10, 11));
}

TEST_F(KvPolicyWorkedExampleTest, SnapKvAndPyramidKv) {  // §7.4
  KvPolicyConfig c = Policy(KvPolicyKind::kSnapKv, 8, 4);
  EXPECT_THAT(Keep(c), ElementsAre(3, 4, 5, 6, 8, 9, 10, 11));
  c.pooling = PoolingMode::kMax;  // [.62 x3, 1.25 x5]: ties to the lower index
  EXPECT_THAT(Keep(c), ElementsAre(3, 4, 5, 6, 8, 9, 10, 11));
  c.pooling = PoolingMode::kNone;  // raw sums: 5, 0, 7, 2
  EXPECT_THAT(Keep(c), ElementsAre(0, 2, 5, 7, 8, 9, 10, 11));
  // One layer: the pyramid degenerates to the uniform budget.
  EXPECT_THAT(Keep(Policy(KvPolicyKind::kPyramidKv, 8, 4)), ElementsAre(3, 4, 5, 6, 8, 9, 10, 11));
}

TEST_F(KvPolicyWorkedExampleTest, BudgetAtLeastPromptKeepsEverything) {
  std::vector<int32_t> all(td::kN);
  std::iota(all.begin(), all.end(), 0);
  for (auto kind : {KvPolicyKind::kFull, KvPolicyKind::kStreamingLlm, KvPolicyKind::kTova,
                    KvPolicyKind::kSnapKv, KvPolicyKind::kPyramidKv, KvPolicyKind::kRestKv}) {
    EXPECT_EQ(Keep(Policy(kind, 12, 4)), all) << KvPolicyName(kind);
    EXPECT_EQ(Keep(Policy(kind, 50, 4)), all) << KvPolicyName(kind);
    EXPECT_EQ(Keep(Policy(kind, 0, 4)), all) << KvPolicyName(kind);
  }
  EXPECT_EQ(Keep(Policy(KvPolicyKind::kFull, 8, 4)), all);
}

TEST_F(KvPolicyWorkedExampleTest, StreamingLlm) {  // §7.5
  EXPECT_THAT(Keep(Policy(KvPolicyKind::kStreamingLlm, 8, 4)),
              ElementsAre(0, 1, 2, 3, 8, 9, 10, 11));
}

TEST_F(KvPolicyWorkedExampleTest, SmallBudgets) {  // §1 [ours]
  // B = 6 <= w: window 2, 4 candidates by the indicator.
  const std::vector<int32_t> six = Keep(Policy(KvPolicyKind::kRestKv, 6, 4));
  EXPECT_EQ(six.size(), 6u);
  EXPECT_THAT(six, IsSupersetOf({10, 11}));
  EXPECT_THAT(Keep(Policy(KvPolicyKind::kRestKv, 3, 4)), ElementsAre(9, 10, 11));
}

// Synthetic layer with H = 4 query heads over Hkv = 2 KV heads (G = 2), where
// each KV head has "hot" tokens whose keys line up with every query.
class KvPolicyPatternTest : public ::testing::Test {
 protected:
  static constexpr int32_t kTokens = 64, kHeads = 4, kKvHeads = 2, kDim = 8, kWindow = 8;

  // A hot key: token `token` of KV head `kv_head`, pointing along `dim`.
  struct Hot {
    int32_t kv_head, token, dim;
  };

  // Every query head looks along e0; hot_per_kv_head[g] lists KV head g's
  // hot tokens.
  void Build(const std::vector<std::vector<int32_t>>& hot_per_kv_head) {
    std::vector<Hot> hot;
    for (int32_t g = 0; g < kKvHeads; ++g) {
      for (int32_t j : hot_per_kv_head[g]) hot.push_back({g, j, 0});
    }
    BuildWith(hot, /*query_dim_per_head=*/false);
  }

  // Query head h looks along e_h when query_dim_per_head, else along e0.
  void BuildWith(const std::vector<Hot>& hot, bool query_dim_per_head) {
    std::mt19937 rng(5);
    std::normal_distribution<float> noise(0.0f, 0.1f);
    q_all_.assign(kTokens * kHeads * kDim, 0.0f);
    k_.assign(kKvHeads * kTokens * kDim, 0.0f);
    v_.assign(kKvHeads * kTokens * kDim, 0.0f);
    for (float& x : k_) x = noise(rng);
    for (float& x : v_) x = 10.0f * noise(rng);
    for (int32_t t = 0; t < kTokens; ++t) {
      for (int32_t h = 0; h < kHeads; ++h) {
        q_all_[(t * kHeads + h) * kDim + (query_dim_per_head ? h : 0)] = 4.0f;
      }
    }
    for (const Hot& x : hot)
      k_[(x.kv_head * kTokens + x.token) * kDim + x.dim] = 6.0f;  // logit 8.5
    std::vector<float> wo(32 * kHeads * kDim);
    for (float& x : wo) x = 10.0f * noise(rng);
    factor_ = ComputeWoFactor(wo.data(), 32, kHeads, kDim);
    h2o_.resize(kHeads * kTokens);
    H2oReferenceScores(q_all_.data(), k_.data(), kTokens, kHeads, kKvHeads, kDim, h2o_.data());
    in_.num_tokens = kTokens;
    in_.num_heads = kHeads;
    in_.num_kv_heads = kKvHeads;
    in_.head_dim = kDim;
    in_.num_queries = kWindow;
    in_.q_window = q_all_.data() + (kTokens - kWindow) * kHeads * kDim;
    in_.k = k_.data();
    in_.v = v_.data();
    in_.wo_factor = factor_.data();
    in_.h2o_scores = h2o_.data();
  }

  std::vector<std::vector<int32_t>> Select(const KvPolicyConfig& c, ThreadPool* pool = nullptr,
                                           int32_t layer = 0, int32_t layers = 1) {
    EXPECT_TRUE(c.Validate().ok()) << c.Validate();
    auto keep = SelectTokens(c, layer, layers, in_, pool);
    EXPECT_EQ(keep.size(), static_cast<size_t>(kKvHeads));
    const int32_t want = KeptTokensForLayer(c, layer, layers, kTokens);
    for (const auto& head : keep) {
      EXPECT_EQ(static_cast<int32_t>(head.size()), want);
      EXPECT_TRUE(std::is_sorted(head.begin(), head.end()));
      EXPECT_EQ(std::adjacent_find(head.begin(), head.end()), head.end());
    }
    return keep;
  }

  std::vector<float> q_all_, k_, v_, factor_, h2o_;
  LayerScoringInput in_;
};

constexpr KvPolicyKind kScoredPolicies[] = {KvPolicyKind::kH2o, KvPolicyKind::kSnapKv,
                                            KvPolicyKind::kPyramidKv, KvPolicyKind::kRestKv};

TEST_F(KvPolicyPatternTest, DominantTokenPerKvHead) {
  Build({{20}, {33}});
  for (KvPolicyKind kind : kScoredPolicies) {
    SCOPED_TRACE(KvPolicyName(kind));
    const auto keep = Select(Policy(kind, 24, kWindow));
    EXPECT_THAT(keep[0], IsSupersetOf({20, 56, 57, 58, 59, 60, 61, 62, 63}));
    EXPECT_THAT(keep[1], IsSupersetOf({33, 56, 57, 58, 59, 60, 61, 62, 63}));
  }
  // TOVA keeps one set for all heads: both hot tokens.
  const auto tova = Select(Policy(KvPolicyKind::kTova, 8, kWindow));
  EXPECT_THAT(tova[0], IsSupersetOf({20, 33}));
  EXPECT_EQ(tova[0], tova[1]);
}

TEST_F(KvPolicyPatternTest, QueryHeadsReadTheirOwnKvHead) {
  // Query heads 0, 1 share KV head 0 and heads 2, 3 share KV head 1 (h / G);
  // each query head has its own hot token in its own KV head.
  BuildWith({{0, 10, 0}, {0, 30, 1}, {1, 20, 2}, {1, 40, 3}}, /*query_dim_per_head=*/true);
  for (KvPolicyKind kind : kScoredPolicies) {
    SCOPED_TRACE(KvPolicyName(kind));
    const auto keep = Select(Policy(kind, 24, kWindow));
    EXPECT_THAT(keep[0], IsSupersetOf({10, 30}));
    EXPECT_THAT(keep[1], IsSupersetOf({20, 40}));
  }
  EXPECT_THAT(Select(Policy(KvPolicyKind::kTova, 4, kWindow))[0], ElementsAre(10, 20, 30, 40));
}

TEST_F(KvPolicyPatternTest, AttentionSink) {
  Build({{0}, {0}});
  for (KvPolicyKind kind : kScoredPolicies) {
    const auto keep = Select(Policy(kind, 24, kWindow));
    EXPECT_THAT(keep[0], IsSupersetOf({0})) << KvPolicyName(kind);
    EXPECT_THAT(keep[1], IsSupersetOf({0})) << KvPolicyName(kind);
  }
  EXPECT_THAT(Select(Policy(KvPolicyKind::kTova, 4, kWindow))[0], IsSupersetOf({0}));
  EXPECT_THAT(Select(Policy(KvPolicyKind::kStreamingLlm, 12, kWindow))[1],
              ElementsAre(0, 1, 2, 3, 56, 57, 58, 59, 60, 61, 62, 63));
}

TEST_F(KvPolicyPatternTest, RecentBand) {
  const std::vector<int32_t> band = {40, 41, 42, 43, 44, 45, 46, 47};
  Build({band, band});
  // 16 candidates: wide enough to hold the band after a width-5 box blurs it.
  for (KvPolicyKind kind : kScoredPolicies) {
    const auto keep = Select(Policy(kind, 24, kWindow));
    EXPECT_THAT(keep[0], IsSupersetOf(band)) << KvPolicyName(kind);
    EXPECT_THAT(keep[1], IsSupersetOf(band)) << KvPolicyName(kind);
  }
  EXPECT_THAT(Select(Policy(KvPolicyKind::kTova, 8, kWindow))[0],
              ElementsAre(40, 41, 42, 43, 44, 45, 46, 47));
}

TEST_F(KvPolicyPatternTest, GqaMaxKeepsEachQueryHeadsFavourite) {
  Build({{20}, {33}});
  KvPolicyConfig c = Policy(KvPolicyKind::kRestKv, 24, kWindow);
  c.gqa_reduce = GqaReduce::kMax;
  EXPECT_THAT(Select(c)[0], IsSupersetOf({20}));
}

TEST_F(KvPolicyPatternTest, PoolDoesNotChangeTheResult) {
  Build({{5, 20}, {33, 50}});
  ThreadPool pool(2);
  for (KvPolicyKind kind : {KvPolicyKind::kH2o, KvPolicyKind::kTova, KvPolicyKind::kSnapKv,
                            KvPolicyKind::kPyramidKv, KvPolicyKind::kRestKv}) {
    KvPolicyConfig c = Policy(kind, 20, kWindow);
    EXPECT_EQ(Select(c, &pool), Select(c, nullptr)) << KvPolicyName(kind);
    c.metric = MetricMode::kBefore;
    EXPECT_EQ(Select(c, &pool), Select(c, nullptr)) << KvPolicyName(kind);
  }
}

TEST_F(KvPolicyPatternTest, PyramidCountsPerLayer) {
  Build({{20}, {33}});
  KvPolicyConfig rest = Policy(KvPolicyKind::kRestKv, 20, kWindow);
  rest.use_pyramid = true;
  // B = 20, w = 8, N = 64: min_c 0, max_c 24, step 8 over 4 layers -> 24, 16, 8, 0.
  const int32_t want[] = {32, 24, 16, 8};
  for (int32_t layer = 0; layer < 4; ++layer) {
    EXPECT_EQ(KeptTokensForLayer(rest, layer, 4, kTokens), want[layer]);
    const auto keep = Select(rest, nullptr, layer, 4);
    EXPECT_THAT(keep[0], IsSupersetOf({56, 57, 58, 59, 60, 61, 62, 63})) << layer;
  }
  EXPECT_THAT(Select(rest, nullptr, 3, 4)[0], ElementsAre(56, 57, 58, 59, 60, 61, 62, 63));
}

}  // namespace
}  // namespace restkv::engine
