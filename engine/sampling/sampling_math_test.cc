#include "engine/sampling/sampling_math.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace restkv::engine {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(SamplingMathTest, ExpMatchesStdExpOnNonPositiveExponents) {
  std::vector<float> x;
  for (float v = 0.0f; v > -87.0f; v -= 0.00731f) x.push_back(v);
  x.push_back(-0.0f);
  x.push_back(-1e-8f);
  std::vector<float> y(x.size());
  ExpShiftedScaled(x, 0.0f, 1.0f, absl::MakeSpan(y));
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(static_cast<double>(x[i]));
    worst = std::max(worst, std::abs(y[i] - want) / want);
  }
  EXPECT_LT(worst, 5e-7);  // a few float ulp
  std::vector<float> tiny = {-87.5f, -1000.0f, -kInf};
  ExpShiftedScaled(tiny, 0.0f, 1.0f, absl::MakeSpan(tiny));  // in place
  EXPECT_EQ(tiny, (std::vector<float>{0.0f, 0.0f, 0.0f}));
}

TEST(SamplingMathTest, ExpShiftsAndScalesEveryLaneAndTheTail) {
  std::vector<float> x(37);  // two 16-lane chunks and a tail
  for (size_t i = 0; i < x.size(); ++i) x[i] = 3.0f - 0.25f * static_cast<float>(i);
  std::vector<float> y(x.size());
  ExpShiftedScaled(x, 3.0f, 2.0f, absl::MakeSpan(y));
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp((static_cast<double>(x[i]) - 3.0) * 2.0);
    EXPECT_NEAR(y[i] / want, 1.0, 5e-7) << i;
  }
  EXPECT_EQ(y[0], 1.0f);  // the max maps to exactly 1
}

TEST(SamplingMathTest, MaxAndArgmaxOverLanesAndTail) {
  // 37 values: two full 16-lane chunks and a tail of 5; the max in each place.
  for (size_t at : {0u, 15u, 16u, 33u, 36u}) {
    std::vector<float> x(37, -1.0f);
    x[at] = 3.0f;
    EXPECT_EQ(MaxOf(x), 3.0f) << at;
    EXPECT_EQ(Argmax(x), static_cast<int32_t>(at)) << at;
  }
  EXPECT_EQ(Argmax(std::vector<float>{-kInf, -kInf}), 0);
  EXPECT_EQ(Argmax(std::vector<float>{1.0f, 4.0f, 4.0f}), 1);
}

TEST(SamplingMathTest, ZeroBelowAndSumsCoverLanesAndTail) {
  std::vector<float> x(37);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 5) * 0.25f;  // 0 .. 1
  double want_all = 0.0;
  double want_high = 0.0;
  for (float v : x) {
    want_all += v;
    if (v >= 0.5f) want_high += v;
  }
  EXPECT_FLOAT_EQ(SumOf(x), static_cast<float>(want_all));
  EXPECT_FLOAT_EQ(SumOfAtLeast(x, 0.5f), static_cast<float>(want_high));
  ZeroBelow(absl::MakeSpan(x), 0.5f);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(x[i], i % 5 >= 2 ? static_cast<float>(i % 5) * 0.25f : 0.0f) << i;
  }
}

TEST(SamplingMathTest, SumExpShiftedMatchesDouble) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  std::vector<float> x(1000);  // not a multiple of the block
  for (float& v : x) v = normal(rng);
  x[10] = -kInf;
  const float shift = *std::max_element(x.begin(), x.end());
  double want = 0.0;
  for (float v : x) want += std::exp(static_cast<double>(v) - shift);
  EXPECT_NEAR(SumExpShifted(x, shift) / want, 1.0, 1e-6);
}

TEST(SamplingMathTest, TopNIdsIsSortedWithTiesByLowerId) {
  std::mt19937 rng(8);
  std::vector<float> x(301);
  for (float& v : x) v = static_cast<float>(rng() % 20);  // many ties
  for (int32_t n : {0, 1, 7, 40, 301}) {
    std::vector<int32_t> want(x.size());
    std::iota(want.begin(), want.end(), 0);
    std::stable_sort(want.begin(), want.end(), [&](int32_t a, int32_t b) { return x[a] > x[b]; });
    want.resize(n);
    std::vector<int32_t> got;
    TopNIds(x, n, &got);
    EXPECT_EQ(got, want) << "n " << n;
  }
}

TEST(SamplingMathTest, BucketsAreMonotoneAndClamped) {
  EXPECT_EQ(BucketBelowMax(0.0f), 0);
  EXPECT_EQ(BucketBelowMax(1.0f / kBucketsPerUnit), 1);
  EXPECT_EQ(BucketBelowMax(31.9f), static_cast<int32_t>(31.9f * kBucketsPerUnit));
  EXPECT_EQ(BucketBelowMax(1e6f), kNumBuckets - 1);
  EXPECT_EQ(BucketBelowMax(kInf), kNumBuckets - 1);
}

}  // namespace
}  // namespace restkv::engine
