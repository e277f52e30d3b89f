#include "kernels/cpu/quant_dot.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/quantize_ref.h"
#include "kernels/cpu/random_testutil.h"
#include "kernels/fp16.h"

namespace restkv::kernels::cpu {
namespace {

using ::restkv::kernels::testing::RandomVector;

class QuantDotTest : public ::testing::TestWithParam<GgmlType> {};

// The vector kernel must equal the scalar reference up to float summation
// order, for every tile shape and odd block counts, and a row's result must
// not depend on the tile it is computed in.
TEST_P(QuantDotTest, VectorKernelMatchesScalarReference) {
  const GgmlType type = GetParam();
  for (int64_t nb : {1, 3, 9, 27}) {
    const int64_t n = nb * 32;
    const std::vector<float> w = RandomVector(2 * n, 7 + nb);
    const std::string wq = QuantizeMatrix(type, w.data(), 2, n);
    const int64_t row_bytes = RowBytes(type, n);
    const std::vector<float> x = RandomVector(4 * n, 100 + nb, 2.0f);
    Q8Activations act;
    act.Quantize(x.data(), 4, n);
    const int64_t rows[4] = {0, 1, 2, 3};
    float alone[2][4];
    for (int wi = 0; wi < 2; ++wi) {
      for (int r = 0; r < 4; ++r) {
        DotTile(type, reinterpret_cast<const uint8_t*>(wq.data()) + wi * row_bytes, row_bytes, 1,
                act, &rows[r], 1, &alone[wi][r]);
        const float ref = DotRowReference(type, wq.data() + wi * row_bytes, act.blocks(r), nb);
        EXPECT_NEAR(alone[wi][r], ref, 1e-4f * (1.0f + std::fabs(ref)))
            << "nb " << nb << " weight row " << wi << " x row " << r;
      }
    }
    for (int nw = 1; nw <= 2; ++nw) {
      for (int nx = 1; nx <= 4; ++nx) {
        float out[8];
        DotTile(type, reinterpret_cast<const uint8_t*>(wq.data()), row_bytes, nw, act, rows, nx,
                out);
        for (int wi = 0; wi < nw; ++wi) {
          for (int r = 0; r < nx; ++r) {
            EXPECT_EQ(out[wi * nx + r], alone[wi][r]) << "tile " << nw << "x" << nx;
          }
        }
      }
    }
  }
}

// The quantised dot approximates the float dot of the dequantised weights
// with the original activations: error bounded by the 8-bit activation step.
TEST_P(QuantDotTest, ApproximatesFloatDot) {
  const GgmlType type = GetParam();
  const int64_t n = 576;
  const std::vector<float> w = RandomVector(n, 1);
  const std::vector<float> x = RandomVector(n, 2);
  const std::string wq = QuantizeMatrix(type, w.data(), 1, n);
  std::vector<float> wd(n);
  DequantizeRow(type, wq.data(), wd.data(), n);
  Q8Activations act;
  act.Quantize(x.data(), 1, n);
  double exact = 0, abs_sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    exact += static_cast<double>(wd[i]) * x[i];
    abs_sum += std::fabs(wd[i]);
  }
  const int64_t row = 0;
  float got;
  DotTile(type, reinterpret_cast<const uint8_t*>(wq.data()), RowBytes(type, n), 1, act, &row, 1,
          &got);
  // Each activation moves by at most half a step (amax/254 ≤ 4σ/254).
  EXPECT_NEAR(got, exact, abs_sum * 4.0 / 254.0);
}

INSTANTIATE_TEST_SUITE_P(Types, QuantDotTest,
                         ::testing::Values(GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0),
                         [](const auto& info) {
                           return std::string(GetGgmlTypeTraits(info.param)->name);
                         });

TEST(QuantizeRowQ8_1Test, ScaleAndSum) {
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i - 16) / 16.0f;  // amax = 1
  BlockQ8_1 b;
  QuantizeRowQ8_1(x.data(), &b, 32);
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[16], 0);
  EXPECT_EQ(b.qs[24], 64);  // 0.5 * 127 = 63.5 rounds half to even
  int sum = 0;
  for (int i = 0; i < 32; ++i) sum += b.qs[i];
  EXPECT_NEAR(Fp16ToFloat(b.s), Fp16ToFloat(b.d) * sum, 1e-3);
}

// Every byte, d and s against the formula written out here (amax / 127,
// round half to even), over random blocks, an all-zero block and one of
// exact halves after scaling; and the panel blocks' sums and offsets.
TEST(QuantizeRowQ8_1Test, MatchesTheFormulaElementByElement) {
  const int64_t nb = 40, n = nb * 32;
  std::vector<float> x = RandomVector(n, 17, 3.0f);
  std::fill_n(x.begin() + 32, 32, 0.0f);
  for (int i = 0; i < 31; ++i) x[64 + i] = i % 2 ? 0.5f : -2.5f;
  x[64 + 31] = 127.0f;  // amax 127, so id = 1 and the halves stay halves
  std::vector<BlockQ8_1> got(nb);
  QuantizeRowQ8_1(x.data(), got.data(), n);
  Q8Activations act;
  act.Quantize(x.data(), 1, n);
  for (int64_t b = 0; b < nb; ++b) {
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int lo = 0, hi = 0;
    for (int i = 0; i < 32; ++i) {
      const int q = static_cast<int>(std::nearbyint(x[b * 32 + i] * id));
      ASSERT_EQ(got[b].qs[i], q) << "block " << b << " element " << i;
      ASSERT_EQ(act.blocks(0)[b].qs[i], q);
      ASSERT_EQ(act.panel_blocks(0)[b].qs[i], q);
      (i < 16 ? lo : hi) += q;
    }
    EXPECT_EQ(got[b].d, FloatToFp16(amax / 127.0f)) << b;
    EXPECT_EQ(got[b].s, FloatToFp16(amax / 127.0f * static_cast<float>(lo + hi))) << b;
    const Q8PanelBlock& p = act.panel_blocks(0)[b];
    EXPECT_EQ(p.d, Fp16ToFloat(got[b].d));
    EXPECT_EQ(p.sum, static_cast<float>(lo + hi));
    EXPECT_EQ(p.q4_0_offset, -8 * (lo + hi));
    EXPECT_EQ(p.q8_0_offset, -128 * (lo + hi));
    EXPECT_EQ(p.q6_k_offset[0], -32 * lo);
    EXPECT_EQ(p.q6_k_offset[1], -32 * hi);
  }
  // The tie block rounds -2.5 to -2 and 0.5 to 0 (half to even).
  EXPECT_EQ(got[2].qs[0], -2);
  EXPECT_EQ(got[2].qs[1], 0);
}

}  // namespace
}  // namespace restkv::kernels::cpu
