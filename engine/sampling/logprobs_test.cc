#include "engine/sampling/logprobs.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace restkv::engine {
namespace {

TEST(LogprobsTest, ExpSumsToOneAndTopIsSortedDescending) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(1000);
  for (float& l : logits) l = normal(rng);
  const LogprobResult r = ComputeLogprobs(logits, 17, static_cast<int32_t>(logits.size()));
  ASSERT_EQ(r.top.size(), logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < r.top.size(); ++i) {
    sum += std::exp(static_cast<double>(r.top[i].logprob));
    EXPECT_LE(r.top[i].logprob, 0.0f);
    if (i > 0) {
      EXPECT_GE(r.top[i - 1].logprob, r.top[i].logprob) << "at " << i;
    }
  }
  EXPECT_NEAR(sum, 1.0, 1e-5);
  EXPECT_EQ(r.chosen.token, 17);
}

TEST(LogprobsTest, MatchesKnownProbabilitiesAndIsShiftInvariant) {
  const std::vector<double> probs = {0.5, 0.3, 0.2};
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p) + 7.0));
  for (int32_t id = 0; id < 3; ++id) {
    EXPECT_NEAR(ComputeLogprobs(logits, id, 0).chosen.logprob, std::log(probs[id]), 1e-6);
  }
}

TEST(LogprobsTest, TopNOrderingBreaksTiesByLowerId) {
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f};
  LogprobResult r = ComputeLogprobs(logits, 0, 3);
  ASSERT_EQ(r.top.size(), 3u);
  EXPECT_EQ(r.top[0].token, 1);
  EXPECT_EQ(r.top[1].token, 2);
  EXPECT_EQ(r.top[2].token, 4);
  r = ComputeLogprobs(logits, 0, 4);
  ASSERT_EQ(r.top.size(), 4u);
  EXPECT_EQ(r.top[3].token, 3);
}

TEST(LogprobsTest, ChosenOutsideTopIsStillReported) {
  const std::vector<float> logits = {0.0f, 2.0f, 1.0f};
  const LogprobResult r = ComputeLogprobs(logits, 0, 2);
  ASSERT_EQ(r.top.size(), 2u);
  EXPECT_EQ(r.top[0].token, 1);
  EXPECT_EQ(r.top[1].token, 2);
  EXPECT_EQ(r.chosen.token, 0);
  const double log_z = std::log(1.0 + std::exp(2.0) + std::exp(1.0));
  EXPECT_NEAR(r.chosen.logprob, -log_z, 1e-6);
  EXPECT_NEAR(r.top[0].logprob, 2.0 - log_z, 1e-6);
}

TEST(LogprobsTest, TopNZeroAndTopNAboveVocab) {
  const std::vector<float> logits = {0.0f, 1.0f};
  EXPECT_TRUE(ComputeLogprobs(logits, 1, 0).top.empty());
  EXPECT_EQ(ComputeLogprobs(logits, 1, 20).top.size(), 2u);
}

TEST(LogprobsTest, StableForLargeAndMaskedLogits) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {1000.0f, 999.0f, -1000.0f, -inf};
  const LogprobResult r = ComputeLogprobs(logits, 0, 4);
  EXPECT_NEAR(r.chosen.logprob, -std::log1p(std::exp(-1.0)), 1e-6);
  EXPECT_TRUE(std::isfinite(r.top[2].logprob));
  EXPECT_EQ(r.top[3].token, 3);
  EXPECT_EQ(r.top[3].logprob, -inf);
}

}  // namespace
}  // namespace restkv::engine
