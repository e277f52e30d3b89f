#include "kernels/cpu/packed_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/kquant_testutil.h"
#include "kernels/cpu/quantize_ref.h"
#include "kernels/cpu/random_testutil.h"

namespace restkv::kernels::cpu {
namespace {

using ::restkv::kernels::testing::RandomKQuantMatrix;
using ::restkv::kernels::testing::RandomVector;

bool IsK(GgmlType t) {
  return t == GgmlType::kQ4_K || t == GgmlType::kQ5_K || t == GgmlType::kQ6_K;
}

// Weights of `type` in GGUF layout: quantised random floats, or for the
// K-quants random blocks (every bit pattern of quants and scales).
std::string Weights(GgmlType type, int64_t rows, int64_t n, uint32_t seed) {
  if (IsK(type)) return RandomKQuantMatrix(type, rows, n, seed);
  const std::vector<float> w = RandomVector(rows * n, seed);
  return QuantizeMatrix(type, w.data(), rows, n);
}

std::string TypeName(GgmlType t) { return std::string(GetGgmlTypeTraits(t)->name); }

class PackedGemmTest : public ::testing::TestWithParam<std::tuple<GgmlType, KernelIsa>> {
 protected:
  void SetUp() override {
    std::tie(type_, isa_) = GetParam();
    if (!HasPackedGemm(type_, isa_)) {
      GTEST_SKIP() << "this build or CPU has no " << KernelIsaName(isa_) << " panel kernel here";
    }
  }
  GgmlType type_;
  KernelIsa isa_;
};

// Every output equals the scalar reference dot up to float summation order,
// for row counts that leave a partial panel (and a partial AVX2 half) and
// activation counts that leave a partial tile; and an activation row's
// outputs are bit-identical whether it is multiplied alone or among others
// (batch invariance). 21 rows make a partial tile, and reach the K-quants'
// GEMM over unpacked panels (16 rows or more), which a row alone does not
// take: the two must agree bit for bit.
TEST_P(PackedGemmTest, MatchesReferenceAndIsBatchInvariant) {
  ThreadPool pool(2);
  const int64_t unit = IsK(type_) ? 8 : 1;  // 32-element blocks per type block
  for (const auto& [rows, nbt] : {std::pair<int64_t, int64_t>{37, 3}, {16, 1}, {50, 2}, {5, 9}}) {
    const int64_t nb = nbt * unit, n = nb * 32;
    const std::string wq = Weights(type_, rows, n, 11 + rows + nb);
    const int64_t row_bytes = RowBytes(type_, n);
    auto packed = PackedWeights::Pack(type_, rows, n, wq.data(), pool, isa_);
    const int64_t m = 21;
    const std::vector<float> x = RandomVector(m * n, 200 + rows, 2.0f);
    Q8Activations act;
    act.Quantize(x.data(), m, n);
    std::vector<float> y(m * rows, NAN);
    packed->MatMul(act, m, y.data(), pool);
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t o = 0; o < rows; ++o) {
        const float ref = DotRowReference(type_, wq.data() + o * row_bytes, act.blocks(r), nb);
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

// Every quant at its largest value (all bits set: nibbles 15, Q5_K's fifth
// and Q6_K's high bits on; Q8_0 at -128) against activations of ±127 (one
// sign per row): the largest integer sums a tile forms, e.g. pmaddubsw's
// saturating int16 pair sums on AVX2 without VNNI (2·63·127 for Q6_K,
// 2·128·127 for Q8_0's magnitudes) and the bit merges at their top values.
TEST_P(PackedGemmTest, LargestQuantsAgainstFullScaleActivationsStayExact) {
  ThreadPool pool(1);
  const int64_t rows = 16, n = 512;
  std::string wq = Weights(type_, rows, n, 3);
  const int64_t blocks = rows * n / (IsK(type_) ? 256 : 32);
  auto fill = [](auto& field) { std::memset(field, 0xff, sizeof(field)); };
  for (int64_t b = 0; b < blocks; ++b) {
    switch (type_) {
      case GgmlType::kQ4_0:
        fill(reinterpret_cast<BlockQ4_0*>(wq.data())[b].qs);
        break;
      case GgmlType::kQ4_1:
        fill(reinterpret_cast<BlockQ4_1*>(wq.data())[b].qs);
        break;
      case GgmlType::kQ8_0: {
        auto& qs = reinterpret_cast<BlockQ8_0*>(wq.data())[b].qs;
        std::fill(std::begin(qs), std::end(qs), static_cast<int8_t>(-128));
        break;
      }
      case GgmlType::kQ4_K:
        fill(reinterpret_cast<BlockQ4_K*>(wq.data())[b].qs);
        break;
      case GgmlType::kQ5_K:
        fill(reinterpret_cast<BlockQ5_K*>(wq.data())[b].qs);
        fill(reinterpret_cast<BlockQ5_K*>(wq.data())[b].qh);
        break;
      case GgmlType::kQ6_K:
        fill(reinterpret_cast<BlockQ6_K*>(wq.data())[b].ql);
        fill(reinterpret_cast<BlockQ6_K*>(wq.data())[b].qh);
        break;
      default:
        FAIL() << "no saturated layout for " << TypeName(type_);
    }
  }
  auto packed = PackedWeights::Pack(type_, rows, n, wq.data(), pool, isa_);
  // 2 rows take the tiles over the panels; 18 (16 or more) the K-quants'
  // tiles over unpacked panels too.
  for (const int64_t m : {2, 18}) {
    std::vector<float> x(m * n, 1.0f);
    for (int64_t r = 1; r < m; r += 2) std::fill_n(x.begin() + r * n, n, -1.0f);
    Q8Activations act;
    act.Quantize(x.data(), m, n);
    ASSERT_EQ(act.blocks(0)[0].qs[0], 127);
    std::vector<float> y(m * rows, NAN);
    packed->MatMul(act, m, y.data(), pool);
    const int64_t row_bytes = RowBytes(type_, n);
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t o = 0; o < rows; ++o) {
        const float ref = DotRowReference(type_, wq.data() + o * row_bytes, act.blocks(r), n / 32);
        ASSERT_NEAR(y[r * rows + o], ref, 1e-4f * (1.0f + std::fabs(ref)))
            << "m " << m << " x row " << r << " out " << o;
      }
    }
  }
}

// Pack reads the GGUF layout exactly: a one-hot weight picks one activation.
TEST_P(PackedGemmTest, OneHotWeightSelectsActivation) {
  if (IsK(type_)) GTEST_SKIP() << "K-quant layouts: KQuantFixture (gguf-py values)";
  ThreadPool pool(1);
  const int64_t rows = 20, n = 64;
  std::vector<float> w(rows * n, 0.0f);
  for (int64_t o = 0; o < rows; ++o) w[o * n + (o * 7) % n] = 1.0f;
  const std::string wq = QuantizeMatrix(type_, w.data(), rows, n);
  auto packed = PackedWeights::Pack(type_, rows, n, wq.data(), pool, isa_);
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

// The packed bytes are about the file's: K-quants keep their own widths.
TEST_P(PackedGemmTest, ResidentBytesCloseToTheFile) {
  ThreadPool pool(1);
  const int64_t rows = 64, n = 2048;
  const std::string wq = Weights(type_, rows, n, 5);
  auto packed = PackedWeights::Pack(type_, rows, n, wq.data(), pool, isa_);
  const double ratio = static_cast<double>(packed->size_bytes()) / static_cast<double>(wq.size());
  EXPECT_LT(ratio, IsK(type_) ? 1.04 : 1.25) << ratio;
}

INSTANTIATE_TEST_SUITE_P(
    Types, PackedGemmTest,
    ::testing::Combine(::testing::Values(GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0,
                                         GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K),
                       ::testing::Values(KernelIsa::kAvx512Vnni, KernelIsa::kAvxVnni,
                                         KernelIsa::kAvx2)),
    [](const auto& info) {
      return TypeName(std::get<0>(info.param)) + "_" +
             std::string(KernelIsaName(std::get<1>(info.param)));
    });

}  // namespace
}  // namespace restkv::kernels::cpu
