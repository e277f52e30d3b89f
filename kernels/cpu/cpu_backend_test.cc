#include "kernels/cpu/cpu_backend.h"

#include <cmath>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/quantize_ref.h"

namespace restkv::kernels::cpu {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// y = x·Wᵀ in double, on the dequantised weights.
std::vector<double> NaiveMatMul(const std::vector<float>& w, const std::vector<float>& x, int64_t m,
                                int64_t rows, int64_t cols) {
  std::vector<double> y(m * rows, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        y[i * rows + r] += double(w[r * cols + c]) * x[i * cols + c];
  return y;
}

class MatMulTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(MatMulTest, MatchesNaiveOnDequantisedWeights) {
  const GgmlType type = GetParam();
  CpuBackend backend(2);
  const int64_t rows = 67, cols = 256;  // rows not a multiple of the grain
  const std::vector<float> w = Random(rows * cols, 1);
  const std::string bytes = QuantizeMatrix(type, w.data(), rows, cols);
  std::vector<float> wd(rows * cols);
  const int64_t row_bytes = RowBytes(type, cols);
  for (int64_t r = 0; r < rows; ++r)
    DequantizeRow(type, bytes.data() + r * row_bytes, wd.data() + r * cols, cols);
  auto m = backend.PrepareMatrix(type, rows, cols, bytes.data());
  ASSERT_TRUE(m.ok()) << m.status();
  for (int64_t batch : {1, 3, 4, 9}) {
    const std::vector<float> x = Random(batch * cols, 2 + batch);
    std::vector<float> y(batch * rows, NAN);
    backend.MatMul(*m, x.data(), batch, y.data());
    const std::vector<double> ref = NaiveMatMul(wd, x, batch, rows, cols);
    // Quantised types also round activations to 8 bits: about 1% of the
    // row's L1 mass; f32 only differs by summation order.
    const bool exact = type == GgmlType::kF32 || type == GgmlType::kF16 || type == GgmlType::kBF16;
    for (int64_t i = 0; i < batch * rows; ++i) {
      ASSERT_FALSE(std::isnan(y[i])) << i;
      const double tol = exact ? 1e-4 * (1 + std::fabs(ref[i])) : 0.35;
      ASSERT_NEAR(y[i], ref[i], tol) << "batch " << batch << " element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, MatMulTest,
                         ::testing::Values(GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16,
                                           GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0,
                                           GgmlType::kQ4_K, GgmlType::kQ6_K),
                         [](const auto& info) {
                           return std::string(GetGgmlTypeTraits(info.param)->name);
                         });

// K-quants are multiplied natively (no Q8_0 copy) on the path the CPU
// supports, and RESTKV_CPU_ISA=avx2, read at construction, forces AVX2 even
// where AVX-512 is available; both paths give the same outputs up to float
// summation order.
TEST(CpuBackendTest, KQuantsPackNativelyAndIsaOverrideIsReadAtConstruction) {
  if (!KernelIsaAvailable(KernelIsa::kAvx2)) GTEST_SKIP() << "no AVX2 on this build or CPU";
  const int64_t rows = 40, cols = 512;
  const std::vector<float> w = Random(rows * cols, 3);
  const std::string bytes = QuantizeMatrix(GgmlType::kQ4_K, w.data(), rows, cols);
  const std::vector<float> x = Random(3 * cols, 4);
  std::vector<std::vector<float>> outs;
  for (const char* isa : {"", "avx2"}) {
    setenv("RESTKV_CPU_ISA", isa, 1);
    CpuBackend backend(2);
    unsetenv("RESTKV_CPU_ISA");
    if (std::string(isa) == "avx2") {
      ASSERT_EQ(backend.kernel_isa(), KernelIsa::kAvx2);
    } else {
      ASSERT_EQ(backend.kernel_isa(), SelectKernelIsa(std::nullopt));
    }
    auto m = backend.PrepareMatrix(GgmlType::kQ4_K, rows, cols, bytes.data());
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->type, GgmlType::kQ4_K);
    EXPECT_EQ(m->data, bytes.data());  // no repacked copy of the file's layout
    ASSERT_NE(m->packed, nullptr);
    EXPECT_EQ(static_cast<const PackedWeights*>(m->packed)->isa(), backend.kernel_isa());
    outs.emplace_back(3 * rows);
    backend.MatMul(*m, x.data(), 3, outs.back().data());
  }
  for (int64_t i = 0; i < 3 * rows; ++i) {
    ASSERT_NEAR(outs[0][i], outs[1][i], 1e-4f * (1.0f + std::fabs(outs[0][i]))) << i;
  }
}

TEST(CpuBackendTest, RmsNorm) {
  CpuBackend backend(2);
  const std::vector<float> x = {1, 2, 3, 4, -1, -2, -3, -4};
  const std::vector<float> w = {1, 0.5f, 2, 1};
  std::vector<float> y(8);
  backend.RmsNorm(x.data(), w.data(), 2, 4, 0.0f, y.data());
  const float inv = 1.0f / std::sqrt(7.5f);
  EXPECT_NEAR(y[0], 1 * inv, 1e-6);
  EXPECT_NEAR(y[1], 2 * inv * 0.5f, 1e-6);
  EXPECT_NEAR(y[6], -3 * inv * 2, 1e-6);
}

TEST(CpuBackendTest, RopeNormAndNeoxRotatePairs) {
  CpuBackend backend(1);
  const int32_t d = 8;
  std::vector<float> x = Random(2 * d, 3);  // 1 token, 2 heads
  const int32_t pos = 5;
  for (RopeStyle style : {RopeStyle::kNorm, RopeStyle::kNeox}) {
    std::vector<float> y = x;
    RopeParams p;
    p.style = style;
    p.rot_dims = d;
    p.theta_base = 10000.0f;
    backend.Rope(y.data(), &pos, 1, 2, d, p);
    for (int h = 0; h < 2; ++h) {
      for (int i = 0; i < d / 2; ++i) {
        const int a = style == RopeStyle::kNorm ? 2 * i : i;
        const int b = style == RopeStyle::kNorm ? 2 * i + 1 : i + d / 2;
        const double angle = pos * std::pow(10000.0, -2.0 * i / d);
        const double x0 = x[h * d + a], x1 = x[h * d + b];
        EXPECT_NEAR(y[h * d + a], x0 * std::cos(angle) - x1 * std::sin(angle), 1e-5);
        EXPECT_NEAR(y[h * d + b], x0 * std::sin(angle) + x1 * std::cos(angle), 1e-5);
      }
    }
  }
}

TEST(CpuBackendTest, SwiGlu) {
  CpuBackend backend(2);
  std::vector<float> g = {0.0f, 1.0f, -2.0f, 3.0f};
  const std::vector<float> u = {5.0f, 2.0f, 1.0f, -1.0f};
  backend.SwiGlu(g.data(), u.data(), 4);
  EXPECT_FLOAT_EQ(g[0], 0.0f);
  EXPECT_NEAR(g[1], 1.0 / (1 + std::exp(-1.0)) * 2, 1e-6);
  EXPECT_NEAR(g[2], -2.0 / (1 + std::exp(2.0)), 1e-6);
  EXPECT_NEAR(g[3], -3.0 / (1 + std::exp(-3.0)), 1e-6);
}

// The vector path (8 at a time) and the scalar tail against the formula in
// double, over gates far into both tails of the sigmoid.
TEST(CpuBackendTest, SwiGluMatchesTheFormulaOverWideGates) {
  CpuBackend backend(2);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> gate(-100.0f, 100.0f), up(-4.0f, 4.0f);
  for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{1003}}) {
    std::vector<float> g(n), u(n);
    for (int64_t i = 0; i < n; ++i) {
      g[i] = i % 5 == 0 ? gate(rng) / 25.0f : gate(rng);
      u[i] = up(rng);
    }
    std::vector<float> got = g;
    backend.SwiGlu(got.data(), u.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double want = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * u[i];
      EXPECT_NEAR(got[i], want, 1e-6 * std::fabs(want) + 1e-35) << "n=" << n << " g=" << g[i];
    }
  }
}

TEST(CpuBackendTest, RejectsUnknownWeightType) {
  CpuBackend backend(1);
  float dummy[32] = {};
  auto m = backend.PrepareMatrix(static_cast<GgmlType>(99), 1, 32, dummy);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace restkv::kernels::cpu
