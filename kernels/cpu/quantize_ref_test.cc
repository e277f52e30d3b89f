#include "kernels/cpu/quantize_ref.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/quant_fixture_testutil.h"
#include "kernels/ggml_type.h"

namespace restkv::kernels {
namespace {

std::vector<float> RoundTrip(GgmlType type, const std::vector<float>& x) {
  const std::string q = QuantizeMatrix(type, x.data(), 1, static_cast<int64_t>(x.size()));
  std::vector<float> y(x.size());
  DequantizeRow(type, q.data(), y.data(), static_cast<int64_t>(x.size()));
  return y;
}

std::vector<float> Gaussian(int64_t n, float stddev, float mean, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

// Byte-exact agreement with gguf-py's quantisers (= ggml's reference ones).
TEST(QuantizeRefGgufPy, BytesMatch) {
  auto fixture = testing::LoadQuantFixture();
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  ASSERT_FALSE(fixture->input.empty());
  ASSERT_EQ(fixture->quant.size(), 7u);
  for (const auto& rec : fixture->quant) {
    SCOPED_TRACE(rec.type);
    GgmlType type = GgmlType::kF32;
    for (uint32_t id = 0; id < 64; ++id) {
      const GgmlTypeTraits* t = GetGgmlTypeTraits(id);
      if (t != nullptr && t->name == rec.type) type = static_cast<GgmlType>(id);
    }
    ASSERT_NE(type, GgmlType::kF32);
    const int64_t n = static_cast<int64_t>(fixture->input.size());
    const std::string got = QuantizeMatrix(type, fixture->input.data(), 1, n);
    EXPECT_EQ(absl::BytesToHexString(got), absl::BytesToHexString(rec.bytes));
  }
}

struct BoundCase {
  GgmlType type;
  // Error bound per element: `bound` times the block's max |x| (types with
  // a symmetric scale) or max - min (types with a min, Q4_1 / Q5_1), plus
  // `min_term` times |min| for the fp16 rounding of the stored min.
  double bound;
  double min_term = 0.0;
};

// Round trip on Gaussian data of several scales and offsets: every element
// within the bound that follows from the format.
class QuantizeRefRoundTrip : public ::testing::TestWithParam<BoundCase> {};

TEST_P(QuantizeRefRoundTrip, ErrorWithinBound) {
  const BoundCase c = GetParam();
  const int64_t block = GetGgmlTypeTraits(c.type)->block_size;
  int seed = 1;
  // NOTE(restkv): no smaller scale: d would be an fp16 subnormal, whose
  // coarser rounding the bounds below do not cover (nor do ggml's).
  for (float stddev : {1e-2f, 1.0f, 300.0f}) {
    for (float mean : {0.0f, 0.5f * stddev}) {
      const std::vector<float> x = Gaussian(4 * 256, stddev, mean, seed++);
      const std::vector<float> y = RoundTrip(c.type, x);
      for (size_t b0 = 0; b0 < x.size(); b0 += block) {
        const auto [lo, hi] = std::minmax_element(x.begin() + b0, x.begin() + b0 + block);
        const double amax = std::max(std::fabs(*lo), std::fabs(*hi));
        const double range =
            c.type == GgmlType::kQ4_1 || c.type == GgmlType::kQ5_1 ? *hi - *lo : amax;
        for (size_t i = b0; i < b0 + block; ++i) {
          ASSERT_LE(std::fabs(x[i] - y[i]), c.bound * range + c.min_term * std::fabs(*lo))
              << "stddev " << stddev << " mean " << mean << " element " << i << ": " << x[i]
              << " -> " << y[i];
        }
      }
    }
  }
}

// Q4_0: step d = amax/8; worst case is the clamped opposite extreme (one
// step) plus fp16 rounding of d (2^-11 relative, times up to 8 steps).
// Q4_1: half a step of (max-min)/15, plus fp16 rounding of d and m.
// Q5_0 / Q5_1: as Q4 with twice the levels. Q8_0: half a step of amax/127
// plus fp16 rounding of d (127 steps * 2^-11 relative).
// Q4_K / Q6_K: sub-block scales are themselves rounded to 6 / 8 bits, so
// their bounds are empirical (measured 0.065 / 0.029) with a 2x margin.
INSTANTIATE_TEST_SUITE_P(
    Types, QuantizeRefRoundTrip,
    ::testing::Values(BoundCase{GgmlType::kQ4_0, 1.0 / 8 + 8.0 / 2048 + 1e-6},
                      BoundCase{GgmlType::kQ4_1, 0.5 / 15 + 16.0 / 2048 + 1e-6, 1.0 / 2048},
                      BoundCase{GgmlType::kQ5_0, 1.0 / 16 + 16.0 / 2048 + 1e-6},
                      BoundCase{GgmlType::kQ5_1, 0.5 / 31 + 32.0 / 2048 + 1e-6, 1.0 / 2048},
                      BoundCase{GgmlType::kQ8_0, 0.5 / 127 + 1.0 / 2048 + 1e-6},
                      BoundCase{GgmlType::kQ4_K, 0.12}, BoundCase{GgmlType::kQ6_K, 0.06}),
    [](const auto& info) { return std::string(GetGgmlTypeTraits(info.param.type)->name); });

// Root-mean-square error relative to the data's RMS: catches a quantiser
// that meets its worst-case bound but is systematically poor. Limits are the
// measured values (seed 99) plus ~20%.
TEST(QuantizeRefRoundTripStats, RelativeRmsError) {
  const std::vector<float> x = Gaussian(64 * 256, 1.0f, 0.0f, 99);
  const struct {
    GgmlType type;
    double max_rel_rms;
  } cases[] = {{GgmlType::kQ4_0, 0.10},  {GgmlType::kQ4_1, 0.09},   {GgmlType::kQ5_0, 0.05},
               {GgmlType::kQ5_1, 0.045}, {GgmlType::kQ8_0, 0.0065}, {GgmlType::kQ4_K, 0.09},
               {GgmlType::kQ6_K, 0.022}, {GgmlType::kF16, 0.0003},  {GgmlType::kBF16, 0.002}};
  for (const auto& c : cases) {
    const std::vector<float> y = RoundTrip(c.type, x);
    double err = 0, ref = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      err += (x[i] - y[i]) * (x[i] - y[i]);
      ref += x[i] * x[i];
    }
    EXPECT_LT(std::sqrt(err / ref), c.max_rel_rms) << GetGgmlTypeTraits(c.type)->name;
  }
}

TEST(QuantizeRefRoundTripStats, ZerosStayZeroAndF32IsExact) {
  const std::vector<float> zeros(512, 0.0f);
  for (GgmlType t :
       {GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
        GgmlType::kQ5_1, GgmlType::kQ8_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    for (float v : RoundTrip(t, zeros)) ASSERT_EQ(v, 0.0f) << GetGgmlTypeTraits(t)->name;
  }
  const std::vector<float> x = Gaussian(64, 1.0f, 0.0f, 5);
  EXPECT_EQ(RoundTrip(GgmlType::kF32, x), x);
}

TEST(QuantizeRefMatrix, RowsAreQuantizedIndependently) {
  const int64_t rows = 3, cols = 256;
  const std::vector<float> x = Gaussian(rows * cols, 1.0f, 0.0f, 7);
  for (GgmlType t : {GgmlType::kQ4_0, GgmlType::kQ8_0, GgmlType::kQ4_K, GgmlType::kBF16}) {
    const std::string m = QuantizeMatrix(t, x.data(), rows, cols);
    const int64_t row_bytes = RowBytes(t, cols);
    ASSERT_EQ(static_cast<int64_t>(m.size()), rows * row_bytes);
    for (int64_t r = 0; r < rows; ++r) {
      const std::string row = QuantizeMatrix(t, x.data() + r * cols, 1, cols);
      EXPECT_EQ(m.substr(r * row_bytes, row_bytes), row)
          << GetGgmlTypeTraits(t)->name << " row " << r;
    }
  }
}

TEST(QuantizeRefMatrix, HasReferenceQuantizer) {
  EXPECT_TRUE(HasReferenceQuantizer(GgmlType::kQ4_K));
  EXPECT_TRUE(HasReferenceQuantizer(GgmlType::kF32));
  EXPECT_FALSE(HasReferenceQuantizer(GgmlType::kQ2_K));
  EXPECT_FALSE(HasReferenceQuantizer(GgmlType::kQ8_1));
}

}  // namespace
}  // namespace restkv::kernels
