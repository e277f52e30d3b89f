#include "engine/eviction/wo_factor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/thread_pool.h"
#include "engine/eviction/testdata.h"

namespace restkv::engine {
namespace {

// Checks R_h^T R_h = W_O^h^T W_O^h and the zeros below the diagonal.
void ExpectFactorOf(const std::vector<float>& wo, int32_t hidden, int32_t heads, int32_t d,
                    const std::vector<float>& r) {
  ASSERT_EQ(r.size(), static_cast<size_t>(heads) * d * d);
  for (int32_t h = 0; h < heads; ++h) {
    const float* rh = r.data() + h * d * d;
    for (int32_t i = 0; i < d; ++i) {
      for (int32_t j = 0; j < d; ++j) {
        if (j < i) {
          EXPECT_EQ(rh[i * d + j], 0.0f) << "h" << h << " below diagonal " << i << j;
        }
        double gram = 0, rtr = 0, scale = 0;
        for (int32_t row = 0; row < hidden; ++row) {
          const double a = wo[row * heads * d + h * d + i], b = wo[row * heads * d + h * d + j];
          gram += a * b;
          scale += std::abs(a * b);
        }
        for (int32_t k = 0; k < d; ++k) rtr += double{rh[k * d + i]} * rh[k * d + j];
        EXPECT_NEAR(rtr, gram, 1e-5 * scale + 1e-6) << "h" << h << " G[" << i << "][" << j << "]";
      }
    }
  }
}

TEST(EvictionWoFactorTest, WorkedExampleFactor) {  // §7.2: Gram [[2,1],[1,5]]
  const std::vector<float> r = ComputeWoFactor(testdata::kWo.data(), 3, 1, 2);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(r[i], testdata::kR[i], 1e-6f) << i;
}

TEST(EvictionWoFactorTest, RandomHeadsWithAndWithoutPool) {
  constexpr int32_t kHidden = 40, kHeads = 3, kDim = 8;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> wo(kHidden * kHeads * kDim);
  for (float& x : wo) x = normal(rng);
  const std::vector<float> r = ComputeWoFactor(wo.data(), kHidden, kHeads, kDim);
  ExpectFactorOf(wo, kHidden, kHeads, kDim, r);
  ThreadPool pool(2);
  EXPECT_EQ(ComputeWoFactor(wo.data(), kHidden, kHeads, kDim, &pool), r);
  // ||R_h x|| = ||W_O^h x|| for a random x.
  std::vector<float> x(kDim);
  for (float& e : x) e = normal(rng);
  for (int32_t h = 0; h < kHeads; ++h) {
    double lhs = 0, rhs = 0;
    for (int32_t i = 0; i < kDim; ++i) {
      double y = 0;
      for (int32_t k = 0; k < kDim; ++k) y += r[h * kDim * kDim + i * kDim + k] * x[k];
      lhs += y * y;
    }
    for (int32_t row = 0; row < kHidden; ++row) {
      double y = 0;
      for (int32_t k = 0; k < kDim; ++k) y += wo[row * kHeads * kDim + h * kDim + k] * x[k];
      rhs += y * y;
    }
    EXPECT_NEAR(std::sqrt(lhs), std::sqrt(rhs), 1e-5 * std::sqrt(rhs)) << h;
  }
}

TEST(EvictionWoFactorTest, RankDeficientHeads) {
  // Head 0: a zero column and a repeated column; head 1: all zero; D = 2 < d = 4.
  constexpr int32_t kHidden = 2, kHeads = 2, kDim = 4;
  const std::vector<float> wo = {1.0f, 0.0f, 2.0f,  1.0f, 0, 0, 0, 0,
                                 3.0f, 0.0f, -1.0f, 3.0f, 0, 0, 0, 0};
  const std::vector<float> r = ComputeWoFactor(wo.data(), kHidden, kHeads, kDim);
  for (float x : r) EXPECT_TRUE(std::isfinite(x));
  ExpectFactorOf(wo, kHidden, kHeads, kDim, r);
  for (int i = 0; i < kDim * kDim; ++i) EXPECT_EQ(r[kDim * kDim + i], 0.0f) << i;
}

}  // namespace
}  // namespace restkv::engine
