#include "engine/eviction/select.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/eviction/testdata.h"

namespace restkv::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

std::vector<int32_t> TopK(const std::vector<float>& s, int64_t k) {
  std::vector<float> scratch;
  std::vector<int32_t> out;
  TopKIndices(s.data(), static_cast<int64_t>(s.size()), k, &scratch, &out);
  return out;
}

// The causal attention probabilities of §7.5: rows[t] has t + 1 entries.
using Rows = std::vector<std::vector<float>>;
const Rows kHead0 = {{1},
                     {.6f, .4f},
                     {.5f, .2f, .3f},
                     {.4f, .1f, .3f, .2f},
                     {.3f, .1f, .3f, .1f, .2f},
                     {.3f, .05f, .25f, .1f, .1f, .2f}};
const Rows kHead1 = {{1},
                     {.5f, .5f},
                     {.2f, .6f, .2f},
                     {.2f, .5f, .1f, .2f},
                     {.1f, .4f, .1f, .1f, .3f},
                     {.12f, .33f, .03f, .22f, .1f, .2f}};

// Sum over rows first_row.. of each column (H2O: all rows; SnapKV: window rows).
std::vector<float> ColumnSums(const Rows& rows, size_t first_row) {
  std::vector<float> sums(rows.size(), 0.0f);
  for (size_t t = first_row; t < rows.size(); ++t) {
    for (size_t j = 0; j < rows[t].size(); ++j) sums[j] += rows[t][j];
  }
  return sums;
}

std::vector<int32_t> KeepTop(const std::vector<float>& scores, int32_t n, int32_t w, int32_t k) {
  std::vector<float> scratch;
  return KeepTopCandidates(scores.data(), n, w, k, &scratch);
}

TEST(EvictionSelectTest, TopKTiesGoToLowerIndexAndResultIsAscending) {
  EXPECT_THAT(TopK({0.5f, 0.9f, 0.5f, 0.1f, 0.5f}, 2), ElementsAre(0, 1));
  EXPECT_THAT(TopK({0.5f, 0.9f, 0.5f, 0.1f, 0.5f}, 3), ElementsAre(0, 1, 2));
  EXPECT_THAT(TopK({3, 1, 2}, 0), ElementsAre());
  EXPECT_THAT(TopK({3, 1, 2}, 5), ElementsAre(0, 1, 2));
  EXPECT_THAT(TopK({1, 1, 1, 1}, 2), ElementsAre(0, 1));
  EXPECT_THAT(TopK({NAN, 0.1f, NAN, 0.2f}, 3), ElementsAre(0, 1, 3));
  EXPECT_THAT(TopK({-INFINITY, 0.1f, INFINITY}, 1), ElementsAre(2));
}

TEST(EvictionSelectTest, UnsmoothedWorkedExampleKeep) {  // §7.2
  EXPECT_THAT(KeepTop(testdata::kScores, 12, 4, 4), ElementsAre(0, 2, 5, 7, 8, 9, 10, 11));
  EXPECT_THAT(KeepTop(testdata::kSmoothedBeta2000, 12, 4, 4),
              ElementsAre(4, 5, 6, 7, 8, 9, 10, 11));
  EXPECT_THAT(KeepTop(testdata::kSmoothedBeta1, 12, 4, 4), ElementsAre(0, 5, 6, 7, 8, 9, 10, 11));
  EXPECT_THAT(KeepTop(testdata::kSmoothedBetaHalf, 12, 4, 4),
              ElementsAre(0, 5, 6, 7, 8, 9, 10, 11));
}

TEST(EvictionSelectTest, SnapKvWorkedExampleKeep) {  // §7.4
  const std::vector<float> pooled = {0.238567f, 0.263956f, 0.290732f, 0.416509f,
                                     0.401549f, 0.402978f, 0.377589f, 0.350812f};
  EXPECT_THAT(KeepTop(pooled, 12, 4, 4), ElementsAre(3, 4, 5, 6, 8, 9, 10, 11));
}

TEST(EvictionSelectTest, H2oWorkedExample) {  // §7.5, B = 4, w = 2
  const std::vector<float> h0 = ColumnSums(kHead0, 0), h1 = ColumnSums(kHead1, 0);
  const std::vector<float> want0 = {3.1f, 0.85f, 1.15f, 0.4f}, want1 = {2.12f, 2.33f, 0.43f, 0.52f};
  for (int j = 0; j < 4; ++j) {
    EXPECT_NEAR(h0[j], want0[j], 1e-5f * want0[j]) << j;
    EXPECT_NEAR(h1[j], want1[j], 1e-5f * want1[j]) << j;
  }
  EXPECT_THAT(KeepTop(h0, 6, 2, 2), ElementsAre(0, 2, 4, 5));
  EXPECT_THAT(KeepTop(h1, 6, 2, 2), ElementsAre(0, 1, 4, 5));
}

TEST(EvictionSelectTest, TovaWorkedExample) {  // §7.5, B = 4
  std::vector<float> last = kHead0.back();
  last.insert(last.end(), kHead1.back().begin(), kHead1.back().end());
  std::vector<float> mean(6);
  ReduceGroupScores(GqaReduce::kMean, last.data(), 2, 6, 6, mean.data());
  const std::vector<float> want = {0.21f, 0.19f, 0.14f, 0.16f, 0.10f, 0.20f};
  for (int j = 0; j < 6; ++j) EXPECT_NEAR(mean[j], want[j], 1e-5f * want[j]) << j;
  EXPECT_THAT(TopK(mean, 4), ElementsAre(0, 1, 3, 5));
}

TEST(EvictionSelectTest, SnapKvWithoutPoolingWorkedExample) {  // §7.5, w = 2, B = 4
  const std::vector<float> h0 = ColumnSums(kHead0, 4), h1 = ColumnSums(kHead1, 4);
  const std::vector<float> want0 = {0.6f, 0.15f, 0.55f, 0.2f}, want1 = {0.22f, 0.73f, 0.13f, 0.32f};
  for (int j = 0; j < 4; ++j) {
    EXPECT_NEAR(h0[j], want0[j], 1e-5f * want0[j]) << j;
    EXPECT_NEAR(h1[j], want1[j], 1e-5f * want1[j]) << j;
  }
  EXPECT_THAT(KeepTop(h0, 6, 2, 2), ElementsAre(0, 2, 4, 5));
  EXPECT_THAT(KeepTop(h1, 6, 2, 2), ElementsAre(1, 3, 4, 5));
}

TEST(EvictionSelectTest, StreamingLlm) {  // §7.5
  EXPECT_THAT(StreamingLlmKeep(12, 8, 4), ElementsAre(0, 1, 2, 3, 8, 9, 10, 11));
  EXPECT_THAT(StreamingLlmKeep(5, 8, 4), ElementsAre(0, 1, 2, 3, 4));
  EXPECT_THAT(StreamingLlmKeep(12, 4, 4), ElementsAre(0, 1, 10, 11));  // B <= s: s = B/2
  EXPECT_THAT(StreamingLlmKeep(12, 3, 0), ElementsAre(9, 10, 11));
}

TEST(EvictionSelectTest, GqaReduction) {  // §7.6
  const std::vector<float> heads = {0.9f, 0.1f, 0.5f, 0.2f, 0.1f, 0.8f, 0.45f, 0.3f};
  std::vector<float> out(4);
  ReduceGroupScores(GqaReduce::kMean, heads.data(), 2, 4, 4, out.data());
  const std::vector<float> mean = {0.5f, 0.45f, 0.475f, 0.25f};
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(out[j], mean[j], 1e-5f * mean[j]) << j;
  EXPECT_THAT(TopK(out, 2), ElementsAre(0, 2));
  ReduceGroupScores(GqaReduce::kMax, heads.data(), 2, 4, 4, out.data());
  EXPECT_THAT(out, ElementsAre(0.9f, 0.8f, 0.5f, 0.3f));
  EXPECT_THAT(TopK(out, 2), ElementsAre(0, 1));
}

TEST(EvictionSelectTest, EffectiveWindowFallback) {  // §1 [ours]
  EXPECT_EQ(EffectiveWindow(128, 32), 32);
  EXPECT_EQ(EffectiveWindow(33, 32), 32);
  EXPECT_EQ(EffectiveWindow(32, 32), 16);
  EXPECT_EQ(EffectiveWindow(20, 32), 10);
  EXPECT_EQ(EffectiveWindow(22, 32), 10);
  EXPECT_EQ(EffectiveWindow(6, 32), 2);
  EXPECT_EQ(EffectiveWindow(4, 32), 2);
  EXPECT_EQ(EffectiveWindow(3, 32), 3);
  EXPECT_EQ(EffectiveWindow(1, 32), 1);
}

struct PyramidRow {
  int32_t layers, budget, min_c, max_c, step, first, last, sum;
};

TEST(EvictionSelectTest, PyramidScheduleTable) {  // §3 table, §7.8
  constexpr int32_t kLongPrompt = 1 << 20;        // no clamping
  for (const PyramidRow& row : {PyramidRow{32, 128, 4, 188, 5, 188, 33, 3536},
                                PyramidRow{32, 512, 24, 936, 29, 936, 37, 15568},
                                PyramidRow{32, 1024, 49, 1935, 60, 1935, 75, 32160},
                                PyramidRow{32, 2048, 100, 3932, 123, 3932, 119, 64816},
                                PyramidRow{30, 128, 4, 188, 6, 188, 14, 3030},
                                PyramidRow{30, 2048, 100, 3932, 132, 3932, 104, 60540}}) {
    SCOPED_TRACE(::testing::Message() << "L=" << row.layers << " B=" << row.budget);
    int32_t sum = 0;
    for (int32_t l = 0; l < row.layers; ++l) {
      const int32_t k = PyramidCandidates(row.budget, 32, kLongPrompt, l, row.layers);
      EXPECT_EQ(k, row.max_c - l * row.step) << "layer " << l;
      sum += k;
    }
    EXPECT_EQ(PyramidCandidates(row.budget, 32, kLongPrompt, 0, row.layers), row.first);
    EXPECT_EQ(PyramidCandidates(row.budget, 32, kLongPrompt, row.layers - 1, row.layers), row.last);
    EXPECT_EQ(sum, row.sum);
    EXPECT_EQ((row.budget - 32) / 20, row.min_c);
  }
}

TEST(EvictionSelectTest, PyramidScheduleClamped) {  // §3: L = 32, B = 128, N = 200
  int32_t sum = 0;
  for (int32_t l = 0; l < 32; ++l) {
    const int32_t k = PyramidCandidates(128, 32, 200, l, 32);
    EXPECT_EQ(k, 168 - 4 * l) << "layer " << l;
    sum += k;
  }
  EXPECT_EQ(PyramidCandidates(128, 32, 200, 31, 32), 44);
  EXPECT_EQ(sum, 3392);
  // Just above the budget the clamp keeps every candidate at every layer
  // (max_c = N - w = 97, min_c = 95, step 0): the release's quirk, kept.
  EXPECT_EQ(PyramidCandidates(128, 32, 129, 0, 32), 97);
  EXPECT_EQ(PyramidCandidates(128, 32, 129, 31, 32), 97);
  // A single layer keeps the uniform count.
  EXPECT_EQ(PyramidCandidates(128, 32, 1000, 0, 1), 96);
}

}  // namespace
}  // namespace restkv::engine
