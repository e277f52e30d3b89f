#include "kernels/cpu/packed_gemm.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/quantize_ref.h"
#include "kernels/cpu/random_testutil.h"

namespace restkv::kernels::cpu {
namespace {

using ::restkv::kernels::testing::RandomVector;

class PackedGemmTest : public ::testing::TestWithParam<GgmlType> {};

// Every output equals the scalar reference dot up to float summation order,
// for row counts that leave a partial panel and activation counts that leave
// a partial tile; and an activation row's outputs are bit-identical whether
// it is multiplied alone or among others (batch invariance).
TEST_P(PackedGemmTest, MatchesReferenceAndIsBatchInvariant) {
  const GgmlType type = GetParam();
  if (!HasPackedGemm(type)) GTEST_SKIP() << "this build has no AVX-512 VNNI panel kernels";
  ThreadPool pool(2);
  for (const auto& [rows, nb] : {std::pair<int64_t, int64_t>{37, 3}, {16, 1}, {50, 18}, {5, 9}}) {
    const int64_t n = nb * 32;
    const std::vector<float> w = RandomVector(rows * n, 11 + rows + nb);
    const std::string wq = QuantizeMatrix(type, w.data(), rows, n);
    const int64_t row_bytes = RowBytes(type, n);
    auto packed = PackedWeights::Pack(type, rows, n, wq.data(), pool);
    const int64_t m = 13;
    const std::vector<float> x = RandomVector(m * n, 200 + rows, 2.0f);
    Q8Activations act;
    act.Quantize(x.data(), m, n);
    std::vector<float> y(m * rows, NAN);
    packed->MatMul(act, m, y.data(), pool);
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t o = 0; o < rows; ++o) {
        const float ref = DotRowReference(type, wq.data() + o * row_bytes, act.blocks(r), nb);
        ASSERT_NEAR(y[r * rows + o], ref, 1e-4f * (1.0f + std::fabs(ref)))
            << "rows " << rows << " nb " << nb << " x row " << r << " out " << o;
      }
    }
    for (int64_t r = 0; r < m; ++r) {
      Q8Activations one;
      one.Quantize(x.data() + r * n, 1, n);
      std::vector<float> alone(rows);
      packed->MatMul(one, 1, alone.data(), pool);
      for (int64_t o = 0; o < rows; ++o) {
        ASSERT_EQ(alone[o], y[r * rows + o]) << "x row " << r << " out " << o;
      }
    }
  }
}

// Pack reads the GGUF layout exactly: a one-hot weight picks one activation.
TEST_P(PackedGemmTest, OneHotWeightSelectsActivation) {
  const GgmlType type = GetParam();
  if (!HasPackedGemm(type)) GTEST_SKIP() << "this build has no AVX-512 VNNI panel kernels";
  ThreadPool pool(1);
  const int64_t rows = 20, n = 64;
  std::vector<float> w(rows * n, 0.0f);
  for (int64_t o = 0; o < rows; ++o) w[o * n + (o * 7) % n] = 1.0f;
  const std::string wq = QuantizeMatrix(type, w.data(), rows, n);
  auto packed = PackedWeights::Pack(type, rows, n, wq.data(), pool);
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 32) - 15.0f;
  Q8Activations act;
  act.Quantize(x.data(), 1, n);
  std::vector<float> y(rows);
  packed->MatMul(act, 1, y.data(), pool);
  for (int64_t o = 0; o < rows; ++o) {
    EXPECT_NEAR(y[o], x[(o * 7) % n], 0.2f) << "out " << o;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, PackedGemmTest,
                         ::testing::Values(GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0),
                         [](const auto& info) {
                           switch (info.param) {
                             case GgmlType::kQ4_0:
                               return std::string("Q4_0");
                             case GgmlType::kQ4_1:
                               return std::string("Q4_1");
                             default:
                               return std::string("Q8_0");
                           }
                         });

}  // namespace
}  // namespace restkv::kernels::cpu
