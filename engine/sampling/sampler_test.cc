#include "engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/sampling/sampling_math.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace restkv::engine {
namespace {

using ::testing::HasSubstr;

// Chi-square critical values at p = 0.001.
constexpr double kChiSquareDf1 = 10.828;
constexpr double kChiSquareDf2 = 13.816;

std::vector<float> LogProbs(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

// Counts of each id over `draws` samples from fresh copies of `logits`.
std::vector<int> Histogram(const SamplingParams& params, uint64_t seed,
                           const std::vector<float>& logits, int draws) {
  Sampler sampler(params, seed);
  std::vector<int> counts(logits.size(), 0);
  std::vector<float> row;
  for (int i = 0; i < draws; ++i) {
    row = logits;
    ++counts[sampler.Sample(absl::MakeSpan(row), {})];
  }
  return counts;
}

// Pearson's statistic of `counts` against `expected` probabilities, over the
// ids whose expected probability is non-zero.
double ChiSquare(const std::vector<int>& counts, const std::vector<double>& expected) {
  const double n = std::accumulate(counts.begin(), counts.end(), 0.0);
  double stat = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (expected[i] == 0.0) continue;
    const double e = n * expected[i];
    stat += (counts[i] - e) * (counts[i] - e) / e;
  }
  return stat;
}

const std::vector<double> kProbs = {0.5, 0.3, 0.2};

TEST(SamplerTest, GreedyPicksArgmax) {
  SamplingParams p;
  p.temperature = 0.0f;
  Sampler sampler(p, 1);
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 2.0f};
  EXPECT_EQ(sampler.Sample(absl::MakeSpan(logits), {}), 1);
}

TEST(SamplerTest, GreedyTiesGoToLowestId) {
  SamplingParams p;
  p.temperature = 0.0f;
  Sampler sampler(p, 1);
  std::vector<float> logits = {1.0f, 5.0f, 5.0f, 2.0f, 5.0f};
  EXPECT_EQ(sampler.Sample(absl::MakeSpan(logits), {}), 1);
  EXPECT_EQ(Argmax(std::vector<float>{7.0f, 7.0f}), 0);
}

TEST(SamplerTest, GreedyIgnoresSeed) {
  SamplingParams p;
  p.temperature = 0.0f;
  const std::vector<float> logits = {0.2f, 0.25f, 0.24f, -3.0f};
  for (uint64_t seed : {0ULL, 1ULL, 42ULL, ~0ULL}) {
    EXPECT_EQ(Histogram(p, seed, logits, 50), (std::vector<int>{0, 50, 0, 0})) << "seed " << seed;
  }
}

TEST(SamplerTest, TinyTemperatureIsGreedy) {
  SamplingParams p;
  p.temperature = 1e-7f;  // would overflow exp() if used as a divisor
  EXPECT_EQ(Histogram(p, 3, {1.0f, 1.5f, 1.4f}, 100), (std::vector<int>{0, 100, 0}));
}

std::vector<int32_t> Draws(const SamplingParams& p, uint64_t seed, int n) {
  const std::vector<float> logits = {0.1f, 0.5f, -0.2f, 0.3f, 0.0f, 0.4f, -1.0f, 0.2f};
  Sampler sampler(p, seed);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    std::vector<float> row = logits;
    out.push_back(sampler.Sample(absl::MakeSpan(row), {}));
  }
  return out;
}

TEST(SamplerTest, SameSeedGivesSameSequence) {
  SamplingParams p;
  p.top_p = 0.95f;
  EXPECT_EQ(Draws(p, 1234, 1000), Draws(p, 1234, 1000));
}

TEST(SamplerTest, DifferentSeedsDiffer) {
  SamplingParams p;
  const std::vector<int32_t> a = Draws(p, 1, 1000);
  const std::vector<int32_t> b = Draws(p, 2, 1000);
  int same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  // Independent draws over 8 tokens agree about 1/8 of the time.
  EXPECT_LT(same, 300);
}

TEST(SamplerTest, TemperatureOneMatchesSoftmax) {
  const std::vector<int> counts = Histogram(SamplingParams{}, 7, LogProbs(kProbs), 20000);
  EXPECT_LT(ChiSquare(counts, kProbs), kChiSquareDf2)
      << counts[0] << " " << counts[1] << " " << counts[2];
  // The test has power: the same counts reject a uniform distribution.
  EXPECT_GT(ChiSquare(counts, {1.0 / 3, 1.0 / 3, 1.0 / 3}), kChiSquareDf2);
}

TEST(SamplerTest, TemperatureHalfSharpens) {
  SamplingParams p;
  p.temperature = 0.5f;
  // p_i^(1/T) = p_i^2, renormalised.
  const double z = 0.25 + 0.09 + 0.04;
  const std::vector<double> expected = {0.25 / z, 0.09 / z, 0.04 / z};
  const std::vector<int> counts = Histogram(p, 11, LogProbs(kProbs), 20000);
  EXPECT_LT(ChiSquare(counts, expected), kChiSquareDf2);
  EXPECT_GT(ChiSquare(counts, kProbs), kChiSquareDf2);  // not the T = 1 distribution
}

TEST(SamplerTest, TopKOneIsAlwaysArgmax) {
  SamplingParams p;
  p.top_k = 1;
  EXPECT_EQ(Histogram(p, 5, LogProbs(kProbs), 2000), (std::vector<int>{2000, 0, 0}));
}

TEST(SamplerTest, TopKTwoRenormalises) {
  SamplingParams p;
  p.top_k = 2;
  const std::vector<int> counts = Histogram(p, 5, LogProbs(kProbs), 20000);
  EXPECT_EQ(counts[2], 0);
  EXPECT_LT(ChiSquare(counts, {0.625, 0.375, 0.0}), kChiSquareDf1);
}

TEST(SamplerTest, TopKKeepsTiesWithTheKthLogit) {
  SamplingParams p;
  p.top_k = 2;
  const std::vector<int> counts = Histogram(p, 9, {2.0f, 1.0f, 1.0f, 0.0f}, 2000);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[2], 0);
  EXPECT_EQ(counts[3], 0);
}

TEST(SamplerTest, TopPExcludesTheTail) {
  SamplingParams p;
  p.top_p = 0.6f;  // 0.5 alone is short of 0.6, 0.5 + 0.3 reaches it
  const std::vector<int> counts = Histogram(p, 13, LogProbs(kProbs), 20000);
  EXPECT_EQ(counts[2], 0);
  EXPECT_LT(ChiSquare(counts, {0.625, 0.375, 0.0}), kChiSquareDf1);
}

TEST(SamplerTest, TopPAppliesToTheTopKSurvivorsRenormalised) {
  SamplingParams p;
  p.top_k = 2;
  p.top_p = 0.6f;  // after top_k: 0.625, 0.375; 0.625 alone reaches 0.6
  EXPECT_EQ(Histogram(p, 19, LogProbs(kProbs), 1000), (std::vector<int>{1000, 0, 0}));
}

TEST(SamplerTest, TopPOverALongFlatTail) {
  // One token at weight 1 and 49999 tied at e^-12 (6.1e-6, total 0.31).
  std::vector<float> logits(50000, -12.0f);
  logits[0] = 0.0f;
  SamplingParams p;
  p.top_p = 0.7f;  // token 0 alone holds 1 / 1.31 = 0.765
  std::vector<int> counts = Histogram(p, 29, logits, 500);
  EXPECT_EQ(counts[0], 500);
  // 0.8 of the mass is 1.046: token 0, then tail tokens in id order while
  // the mass before them is < 1.046, i.e. ids 1..7446 (ties: lower id first).
  p.top_p = 0.8f;
  counts = Histogram(p, 29, logits, 1000);
  int last_drawn = 0;
  for (int id = 0; id < 50000; ++id) {
    if (counts[id] > 0) last_drawn = id;
  }
  EXPECT_GT(last_drawn, 5000);
  EXPECT_LE(last_drawn, 7447);
  EXPECT_GT(counts[0], 900);  // p = 1 / 1.046 = 0.956
}

TEST(SamplerTest, MinPKeepsTokensAboveFractionOfMax) {
  SamplingParams p;
  p.min_p = 0.5f;  // keeps p >= 0.25: tokens 0 and 1
  std::vector<int> counts = Histogram(p, 17, LogProbs(kProbs), 20000);
  EXPECT_EQ(counts[2], 0);
  EXPECT_LT(ChiSquare(counts, {0.625, 0.375, 0.0}), kChiSquareDf1);
  p.min_p = 0.7f;  // 0.3 / 0.5 = 0.6 < 0.7: only the max
  counts = Histogram(p, 17, LogProbs(kProbs), 1000);
  EXPECT_EQ(counts, (std::vector<int>{1000, 0, 0}));
}

TEST(SamplerTest, MinPAlsoCutsAfterTopKAndTopP) {
  // The candidate-list path (top_k and top_p on) must apply min_p too.
  SamplingParams p;
  p.top_k = 3;
  p.top_p = 0.99f;
  p.min_p = 0.5f;  // keeps p >= 0.25: tokens 0 and 1
  const std::vector<int> counts = Histogram(p, 37, LogProbs({0.5, 0.3, 0.15, 0.05}), 4000);
  EXPECT_EQ(counts[2], 0);
  EXPECT_EQ(counts[3], 0);
  EXPECT_LT(ChiSquare(counts, {0.625, 0.375, 0.0, 0.0}), kChiSquareDf1);
}

TEST(SamplerTest, MaskedLogitsAreNeverDrawn) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(Histogram(SamplingParams{}, 3, {-inf, 0.0f, -inf}, 500), (std::vector<int>{0, 500, 0}));
}

// Large vocabularies take the other code paths: top_k above the heap limit
// (nth_element) and top_p whose nucleus outgrows the first sorted block.
class SamplerLargeVocabTest : public ::testing::Test {
 protected:
  static constexpr int kVocab = 5000;
  void SetUp() override {
    rank_of_.resize(kVocab);
    std::iota(rank_of_.begin(), rank_of_.end(), 0);
    std::shuffle(rank_of_.begin(), rank_of_.end(), std::mt19937(99));
    for (int id = 0; id < kVocab; ++id) logits_.push_back(-0.0002f * rank_of_[id]);
  }
  std::vector<int> rank_of_;  // 0 = largest logit
  std::vector<float> logits_;
};

TEST_F(SamplerLargeVocabTest, TopKAboveHeapLimit) {
  SamplingParams p;
  p.top_k = 2000;
  const std::vector<int> counts = Histogram(p, 21, logits_, 4000);
  int max_rank = 0;
  for (int id = 0; id < kVocab; ++id) {
    if (counts[id] > 0) max_rank = std::max(max_rank, rank_of_[id]);
  }
  EXPECT_LT(max_rank, 2000);
  EXPECT_GT(max_rank, 1500);  // the kept set really is ~2000 wide
}

TEST(SamplerTest, TopKBucketSelectKeepsTiesAndSkipsMaskedTokens) {
  // Above the heap limit, the k-th logit comes from a counting select.
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> logits(4000, -inf);
  std::fill(logits.begin(), logits.begin() + 1000, 2.0f);
  std::fill(logits.begin() + 1000, logits.begin() + 3000, 1.0f);
  for (int32_t k : {1500, 3500}) {  // k-th logit 1.0 (tied 2000 ways), then -inf
    SamplingParams p;
    p.top_k = k;
    const std::vector<int> counts = Histogram(p, 31, logits, 1500);
    const int high = std::accumulate(counts.begin(), counts.begin() + 1000, 0);
    const int low = std::accumulate(counts.begin() + 1000, counts.begin() + 3000, 0);
    EXPECT_EQ(high + low, 1500) << "k " << k;  // never a masked token
    // p(high group) = 1000 e / (1000 e + 2000) = 0.576
    EXPECT_NEAR(high / 1500.0, 0.576, 0.04) << "k " << k;
  }
}

TEST_F(SamplerLargeVocabTest, TopPGrowsTheSortedHead) {
  SamplingParams p;
  p.top_p = 0.5f;
  // Nucleus by brute force: ranks whose higher-ranked mass is < 0.5 of the total.
  std::vector<double> w(kVocab);
  for (int r = 0; r < kVocab; ++r) w[r] = std::exp(-0.0002 * r);
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  int nucleus = 0;
  for (double above = 0.0; above < 0.5 * total; above += w[nucleus]) ++nucleus;
  ASSERT_GT(nucleus, 1024);  // beyond the first two sorted blocks
  const std::vector<int> counts = Histogram(p, 23, logits_, 4000);
  int max_rank = 0;
  for (int id = 0; id < kVocab; ++id) {
    if (counts[id] > 0) max_rank = std::max(max_rank, rank_of_[id]);
  }
  EXPECT_LT(max_rank, nucleus);
  EXPECT_GT(max_rank, nucleus * 9 / 10);
}

TEST(SamplerPenaltyTest, PresenceAndFrequencyUseOutputCountsOnly) {
  SamplingParams p;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  Sampler sampler(p, 0);
  for (int32_t t : {1, 1, 3}) sampler.Accept(t);
  std::vector<float> logits = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
  const std::vector<int32_t> prompt = {0, 2};  // prompt tokens are not penalised here
  sampler.ApplyPenalties(absl::MakeSpan(logits), prompt);
  EXPECT_FLOAT_EQ(logits[0], 1.0f);
  EXPECT_FLOAT_EQ(logits[1], 2.0f - 0.5f * 2 - 0.25f);
  EXPECT_FLOAT_EQ(logits[2], 3.0f);
  EXPECT_FLOAT_EQ(logits[3], 4.0f - 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(logits[4], 5.0f);
}

TEST(SamplerPenaltyTest, NegativePenaltiesEncourage) {
  SamplingParams p;
  p.frequency_penalty = -1.0f;
  p.presence_penalty = -2.0f;
  Sampler sampler(p, 0);
  sampler.Accept(0);
  std::vector<float> logits = {0.0f, 0.0f};
  sampler.ApplyPenalties(absl::MakeSpan(logits), {});
  EXPECT_FLOAT_EQ(logits[0], 3.0f);
  EXPECT_FLOAT_EQ(logits[1], 0.0f);
}

TEST(SamplerPenaltyTest, RepetitionDividesPositiveMultipliesNegativeOncePerId) {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  Sampler sampler(p, 0);
  sampler.Accept(3);
  sampler.Accept(0);  // also in the prompt: still penalised once
  std::vector<float> logits = {2.0f, 1.0f, -1.0f, -3.0f, 4.0f, 0.0f};
  const std::vector<int32_t> prompt = {0, 0, 2, 5};
  sampler.ApplyPenalties(absl::MakeSpan(logits), prompt);
  EXPECT_FLOAT_EQ(logits[0], 1.0f);   // positive: divided, once
  EXPECT_FLOAT_EQ(logits[1], 1.0f);   // not seen
  EXPECT_FLOAT_EQ(logits[2], -2.0f);  // negative prompt token: multiplied
  EXPECT_FLOAT_EQ(logits[3], -6.0f);  // negative output token: multiplied
  EXPECT_FLOAT_EQ(logits[4], 4.0f);   // not seen
  EXPECT_FLOAT_EQ(logits[5], 0.0f);
}

TEST(SamplerPenaltyTest, RepetitionThenFrequencyThenPresence) {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 1.0f;
  p.presence_penalty = 0.5f;
  Sampler sampler(p, 0);
  sampler.Accept(1);
  sampler.Accept(1);
  std::vector<float> logits = {0.0f, 3.0f};
  sampler.ApplyPenalties(absl::MakeSpan(logits), {});
  EXPECT_FLOAT_EQ(logits[1], 3.0f / 2 - 2 * 1.0f - 0.5f);
}

TEST(SamplerPenaltyTest, SampleAppliesPenaltiesAndDoesNotRecord) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.presence_penalty = 1.0f;
  Sampler sampler(p, 0);
  std::vector<float> logits = {1.0f, 1.5f};
  EXPECT_EQ(sampler.Sample(absl::MakeSpan(logits), {}), 1);
  EXPECT_TRUE(sampler.output_counts().empty());  // Sample() records nothing
  sampler.Accept(1);
  logits = {1.0f, 1.5f};
  EXPECT_EQ(sampler.Sample(absl::MakeSpan(logits), {}), 0);
  EXPECT_FLOAT_EQ(logits[1], 0.5f);  // written back in place
}

TEST(SamplerPenaltyTest, RepetitionCountsPromptTokensWhenSampling) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 1.5f;
  Sampler sampler(p, 0);
  std::vector<float> logits = {1.0f, 1.2f};
  const std::vector<int32_t> prompt = {1};
  EXPECT_EQ(sampler.Sample(absl::MakeSpan(logits), prompt), 0);  // 1.2 / 1.5 = 0.8
}

TEST(SamplerTest, LogitBiasIsAddedBeforeEverythingElse) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.logit_bias = {{2, 10.0f}, {1, -100.0f}};
  Sampler sampler(p, 1);
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 2.0f};
  EXPECT_EQ(sampler.Sample(absl::MakeSpan(logits), {}), 2);  // -1 + 10 beats 3 - 100
  EXPECT_FLOAT_EQ(logits[2], 9.0f);
  EXPECT_FLOAT_EQ(logits[1], -97.0f);
  // Before the penalties: the repetition penalty sees the biased logit.
  SamplingParams q;
  q.temperature = 0.0f;
  q.repetition_penalty = 2.0f;
  q.logit_bias = {{0, 2.0f}};
  Sampler biased(q, 1);
  std::vector<float> row = {-1.0f, 0.5f};
  const std::vector<int32_t> prompt = {0};
  EXPECT_EQ(biased.Sample(absl::MakeSpan(row), prompt), 0);  // (-1 + 2) / 2 = 0.5 ties, lowest id
  EXPECT_FLOAT_EQ(row[0], 0.5f);
}

TEST(SamplingParamsTest, DefaultsAndBoundariesAreValid) {
  EXPECT_TRUE(SamplingParams{}.Validate(10).ok());
  SamplingParams p;
  p.temperature = 0.0f;
  p.top_p = 1.0f;
  p.top_k = -1;
  p.min_p = 1.0f;
  p.presence_penalty = -2.0f;
  p.frequency_penalty = 2.0f;
  p.repetition_penalty = 0.01f;
  p.max_tokens = 1;
  p.stop = {"x"};
  p.stop_token_ids = {0, 9};
  p.logprobs = kMaxLogprobs;
  p.min_tokens = 1;  // == max_tokens
  p.logit_bias = {{0, -kMaxLogitBias}, {9, kMaxLogitBias}};
  EXPECT_TRUE(p.Validate(10).ok()) << p.Validate(10);
  p.top_k = 1000;  // larger than the vocabulary: top_k is off, not an error
  p.logprobs = 0;
  EXPECT_TRUE(p.Validate(10).ok()) << p.Validate(10);
}

struct BadParamCase {
  const char* field;
  std::function<void(SamplingParams&)> set;
};

TEST(SamplingParamsTest, RejectsEachOutOfRangeFieldByName) {
  const float nan = std::nanf("");
  const std::vector<BadParamCase> cases = {
      {"temperature", [](SamplingParams& p) { p.temperature = -0.1f; }},
      {"temperature", [nan](SamplingParams& p) { p.temperature = nan; }},
      {"temperature", [](SamplingParams& p) { p.temperature = INFINITY; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 0.0f; }},
      {"top_p", [](SamplingParams& p) { p.top_p = 1.01f; }},
      {"top_p", [nan](SamplingParams& p) { p.top_p = nan; }},
      {"top_k", [](SamplingParams& p) { p.top_k = -2; }},
      {"min_p", [](SamplingParams& p) { p.min_p = -0.01f; }},
      {"min_p", [](SamplingParams& p) { p.min_p = 1.5f; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = 2.5f; }},
      {"presence_penalty", [](SamplingParams& p) { p.presence_penalty = -2.5f; }},
      {"frequency_penalty", [](SamplingParams& p) { p.frequency_penalty = 2.01f; }},
      {"frequency_penalty", [nan](SamplingParams& p) { p.frequency_penalty = nan; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = 0.0f; }},
      {"repetition_penalty", [](SamplingParams& p) { p.repetition_penalty = -1.0f; }},
      {"max_tokens", [](SamplingParams& p) { p.max_tokens = 0; }},
      {"stop[1]",
       [](SamplingParams& p) {
         p.stop = {"a", ""};
       }},
      {"stop_token_ids[0]", [](SamplingParams& p) { p.stop_token_ids = {10}; }},
      {"stop_token_ids[1]",
       [](SamplingParams& p) {
         p.stop_token_ids = {0, -1};
       }},
      {"logprobs", [](SamplingParams& p) { p.logprobs = -2; }},
      {"logprobs", [](SamplingParams& p) { p.logprobs = kMaxLogprobs + 1; }},
      {"min_tokens", [](SamplingParams& p) { p.min_tokens = -1; }},
      {"min_tokens", [](SamplingParams& p) { p.min_tokens = p.max_tokens + 1; }},
      {"logit_bias",
       [](SamplingParams& p) {
         p.logit_bias = {{10, 1.0f}};
       }},
      {"logit_bias",
       [](SamplingParams& p) {
         p.logit_bias = {{1, 100.5f}};
       }},
      {"logit_bias",
       [nan](SamplingParams& p) {
         p.logit_bias = {{1, nan}};
       }},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SamplingParams p;
    cases[i].set(p);
    const absl::Status s = p.Validate(10);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "case " << i << ": " << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(cases[i].field)) << "case " << i;
  }
}

}  // namespace
}  // namespace restkv::engine
