#include "engine/eviction/pooling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "engine/eviction/testdata.h"

namespace restkv::engine {
namespace {

namespace td = testdata;

std::vector<float> Box(const std::vector<float>& in, int32_t k, int32_t shift) {
  std::vector<float> out(in.size());
  ShiftedReplicateBox(in.data(), static_cast<int64_t>(in.size()), k, shift, out.data());
  return out;
}

TEST(EvictionPoolingTest, ShiftedReplicateBoxWorkedExamples) {  // §7.3, §7.2
  td::ExpectPrinted(
      Box(td::kScores, 5, 1).data(),
      {0.138386f, 0.124692f, 0.275186f, 0.280621f, 0.275812f, 0.295696f, 0.316722f, 0.173558f},
      "k5 s+1");
  td::ExpectPrinted(
      Box(td::kScores, 7, 2).data(),
      {0.242416f, 0.230804f, 0.236040f, 0.256771f, 0.253336f, 0.267539f, 0.282557f, 0.180298f},
      "k7 s+2");
  td::ExpectPrinted(
      Box(td::kScores, 7, -3).data(),
      {0.160492f, 0.144997f, 0.153669f, 0.144702f, 0.134920f, 0.242416f, 0.230804f, 0.236040f},
      "k7 s-3");
  td::ExpectPrinted(Box(td::kScores, 5, 0).data(), td::kSmoothedBeta2000, "k5 s0");
  td::ExpectPrinted(Box(td::kScores, 5, -2).data(), td::kSmoothedBeta1, "k5 s-2");
  td::ExpectPrinted(Box(td::kScores, 11, -5).data(), td::kSmoothedBetaHalf, "k11 s-5");
}

TEST(EvictionPoolingTest, AdaptiveKernelTable) {  // §7.3, §7.2
  struct Row {
    double drift;
    AdaptiveKernel want;
  };
  for (const Row& row :
       {Row{0, {5, 1}}, Row{2000, {5, 1}}, Row{2500, {5, 1}}, Row{-1, {5, 0}}, Row{-2500, {5, -1}},
        Row{-4000, {5, -1}}, Row{4000, {5, 2}}, Row{5999, {5, 2}}, Row{10500, {11, 5}}}) {
    const AdaptiveKernel got = AdaptiveKernelFor(row.drift, 2000.0, 5);
    EXPECT_EQ(got.size, row.want.size) << "Delta " << row.drift;
    EXPECT_EQ(got.shift, row.want.shift) << "Delta " << row.drift;
    const AdaptiveKernel wide = AdaptiveKernelFor(row.drift, 2000.0, 21);
    EXPECT_EQ(wide.size, 21) << "Delta " << row.drift;
    EXPECT_EQ(wide.shift, row.want.shift) << "Delta " << row.drift;
  }
  EXPECT_EQ(AdaptiveKernelFor(-2.875, 2000.0, 5), (AdaptiveKernel{5, 0}));
  EXPECT_EQ(AdaptiveKernelFor(-2.875, 1.0, 5), (AdaptiveKernel{5, -2}));
  EXPECT_EQ(AdaptiveKernelFor(-2.875, 0.5, 5), (AdaptiveKernel{11, -5}));
}

TEST(EvictionPoolingTest, DriftOfWorkedExample) {  // §7.2: (15+15-21-32)/8
  DriftScratch scratch;
  EXPECT_DOUBLE_EQ(WindowDrift(td::kProbs.data(), td::kW, td::kN, 4, &scratch), -2.875);
}

TEST(EvictionPoolingTest, DriftTiesGoToLowerIndex) {
  // Two rows, N = 4, K = 1: row 0 ties {1, 3} -> 1; row 1 ties {0, 2} -> 0.
  const std::vector<float> probs = {0.1f, 0.4f, 0.1f, 0.4f, 0.3f, 0.2f, 0.3f, 0.2f};
  DriftScratch scratch;
  EXPECT_DOUBLE_EQ(WindowDrift(probs.data(), 2, 4, 1, &scratch), 1.0);
  // K = 3: row 0 {1, 3, 0} = 4; row 1 {0, 2, 1} = 3; (4 - 3) * 2 / (2 * 3).
  EXPECT_DOUBLE_EQ(WindowDrift(probs.data(), 2, 4, 3, &scratch), 1.0 / 3.0);
}

// Naive drift: sort each row by (value desc, index asc).
double NaiveDrift(const std::vector<float>& probs, int32_t w, int32_t n, int32_t k) {
  int64_t early = 0, late = 0;
  for (int32_t t = 0; t < w; ++t) {
    std::vector<int32_t> idx(n);
    for (int32_t j = 0; j < n; ++j) idx[j] = j;
    const float* row = probs.data() + t * n;
    std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
    int64_t s = 0;
    for (int32_t i = 0; i < k; ++i) s += idx[i];
    (t < w / 2 ? early : late) += s;
  }
  return 2.0 * static_cast<double>(early - late) / (static_cast<double>(w) * k);
}

TEST(EvictionPoolingTest, RadixDriftMatchesSortOnTiesAndWideRanges) {
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> level(0, 6);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  DriftScratch scratch;
  for (int32_t n : {6, 100, 3000}) {
    for (int trial = 0; trial < 3; ++trial) {
      const int32_t w = 4;
      std::vector<float> probs(w * n);
      for (int32_t t = 0; t < w; ++t) {
        for (int32_t j = 0; j < n; ++j) {
          float x = trial == 0   ? 0.125f * level(rng)                    // many exact ties
                    : trial == 1 ? std::ldexp(uni(rng), -level(rng) * 9)  // wide exponents
                                 : uni(rng) * 1e-3f;                      // one narrow bin
          if (j > n - w + t) x = 0.0f;                                    // causal mask
          probs[t * n + j] = x;
        }
      }
      for (int32_t k : {1, 2, n / 3, n - 3}) {
        if (k < 1) continue;
        EXPECT_DOUBLE_EQ(WindowDrift(probs.data(), w, n, k, &scratch), NaiveDrift(probs, w, n, k))
            << "n " << n << " trial " << trial << " k " << k;
      }
    }
  }
}

TEST(EvictionPoolingTest, AvgAndMaxPoolOnSnapKvSums) {  // §7.4
  const std::vector<float> sums = {0.623543f, 0.257031f, 0.312259f, 0.126947f,
                                   0.133882f, 1.252424f, 0.182232f, 0.319404f};
  std::vector<float> out(8);
  AvgPoolZeroPad(sums.data(), 8, 5, out.data());
  td::ExpectPrinted(
      out.data(),
      {0.238567f, 0.263956f, 0.290732f, 0.416509f, 0.401549f, 0.402978f, 0.377589f, 0.350812f},
      "avgpool");
  MaxPool(sums.data(), 8, 5, out.data());
  EXPECT_EQ(out, (std::vector<float>{0.623543f, 0.623543f, 0.623543f, 1.252424f, 1.252424f,
                                     1.252424f, 1.252424f, 1.252424f}));
}

TEST(EvictionPoolingTest, RunningSumsMatchNaiveOnLongInput) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uni(0.0f, 1.0f);
  for (int64_t num : {1, 2, 7, 5000}) {
    std::vector<float> in(num), out(num);
    for (float& x : in) x = uni(rng);
    for (int32_t k : {1, 5, 21}) {
      for (int32_t shift : {-12, -2, 0, 1, 3, 10}) {
        ShiftedReplicateBox(in.data(), num, k, shift, out.data());
        for (int64_t j = 0; j < num; ++j) {
          double want = 0;
          for (int64_t i = j + shift - k / 2; i <= j + shift + k / 2; ++i) {
            want += in[std::clamp<int64_t>(i, 0, num - 1)];
          }
          want /= k;
          ASSERT_NEAR(out[j], want, 1e-5 * want + 1e-9) << num << " k" << k << " s" << shift;
        }
      }
      AvgPoolZeroPad(in.data(), num, k, out.data());
      std::vector<float> mx(num);
      MaxPool(in.data(), num, k, mx.data());
      for (int64_t j = 0; j < num; ++j) {
        double want = 0;
        float want_max = -1;
        for (int64_t i = std::max<int64_t>(0, j - k / 2); i <= std::min(num - 1, j + k / 2); ++i) {
          want += in[i];
          want_max = std::max(want_max, in[i]);
        }
        want /= k;
        ASSERT_NEAR(out[j], want, 1e-5 * want + 1e-9) << num << " k" << k << " j" << j;
        ASSERT_EQ(mx[j], want_max) << num << " k" << k << " j" << j;
      }
    }
  }
}

}  // namespace
}  // namespace restkv::engine
