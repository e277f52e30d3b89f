#include "kernels/kv_dtype.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/fp16.h"

namespace restkv::kernels {
namespace {

constexpr KvDtype kAll[] = {KvDtype::kF32, KvDtype::kF16, KvDtype::kBf16, KvDtype::kQ8_0};

TEST(KvDtype, NamesRoundTripAndUnknownNamesAreRejected) {
  for (KvDtype d : kAll) EXPECT_EQ(KvDtypeFromName(KvDtypeName(d)), d);
  EXPECT_FALSE(KvDtypeFromName("fp16").has_value());
  EXPECT_FALSE(KvDtypeFromName("auto").has_value());
  EXPECT_FALSE(KvDtypeFromName("").has_value());
}

// The default model's page (Hkv 3, d 64, block 16) in each dtype, by hand:
// f32 2·3·16·64·4; 16-bit half that; q8_0 2·3·16·64 int8 + 2·3·16 f32 scales.
TEST(KvPageLayout, PageBytesAndOffsetsOfTheDefaultModel) {
  const KvPageLayout f32{3, 64, 16, KvDtype::kF32};
  EXPECT_EQ(f32.page_bytes(), 24576);
  EXPECT_EQ(f32.v_offset(), 12288);
  EXPECT_EQ(f32.bytes_per_token(), 2 * 3 * 64 * 4);
  for (KvDtype d : {KvDtype::kF16, KvDtype::kBf16}) {
    const KvPageLayout l{3, 64, 16, d};
    EXPECT_EQ(l.page_bytes(), 12288);
    EXPECT_EQ(l.v_offset(), 6144);
    EXPECT_EQ(l.bytes_per_token(), 2 * 3 * 64 * 2);
  }
  const KvPageLayout q8{3, 64, 16, KvDtype::kQ8_0};
  EXPECT_EQ(q8.v_offset(), 3072);
  EXPECT_EQ(q8.k_scale_offset(), 6144);
  EXPECT_EQ(q8.v_scale_offset(), 6144 + 48 * 4);
  EXPECT_EQ(q8.page_bytes(), 6144 + 2 * 48 * 4);
  EXPECT_EQ(q8.bytes_per_token(), 2 * 3 * (64 + 4));
  EXPECT_EQ(q8.RowIndex(2, 5), 2 * 16 + 5);
}

TEST(KvPageLayout, PagesArePaddedTo16Bytes) {
  // 2·1·1·4 int8 + 2·1·1 f32 scales = 16; 2·3·1·4 + 2·3·4 = 48; odd shapes pad.
  EXPECT_EQ((KvPageLayout{1, 4, 1, KvDtype::kQ8_0}).page_bytes(), 16);
  EXPECT_EQ((KvPageLayout{1, 6, 1, KvDtype::kQ8_0}).page_bytes(), 32);  // 12 + 8 = 20 -> 32
  EXPECT_EQ((KvPageLayout{1, 2, 1, KvDtype::kF16}).page_bytes(), 16);   // 8 -> 16
  for (KvDtype d : kAll) {
    for (int32_t bs : {1, 3, 16}) {
      EXPECT_EQ((KvPageLayout{3, 64, bs, d}).page_bytes() % 16, 0) << KvDtypeName(d) << " " << bs;
    }
  }
}

// Every stored element is within the format's unit roundoff of the input:
// relative to itself for the 16-bit formats (plus half an f16 subnormal
// step), relative to the
// row maximum for q8_0; f32 is exact.
TEST(KvDtype, EncodeDecodeIsWithinTheUnitRoundoff) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  constexpr int32_t kD = 128;
  for (KvDtype dtype : kAll) {
    const double u = KvUnitRoundoff(dtype);
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<float> x(kD), y(kD);
      for (float& e : x) e = dist(rng);
      std::vector<uint8_t> row(kD * 4);
      float scale = -1.0f;
      EncodeKvRow(dtype, x.data(), kD, row.data(), &scale);
      DecodeKvRow(dtype, row.data(), scale, kD, y.data());
      double amax = 0;
      for (float e : x) amax = std::max(amax, static_cast<double>(std::fabs(e)));
      for (int32_t i = 0; i < kD; ++i) {
        const double ref = dtype == KvDtype::kQ8_0 ? amax : std::fabs(x[i]);
        // 2^-25: half the spacing of f16 subnormals.
        ASSERT_LE(std::fabs(y[i] - x[i]), u * ref * (1 + 1e-6) + 3e-8)
            << KvDtypeName(dtype) << " trial " << trial << " element " << i;
      }
      if (dtype == KvDtype::kF32) {
        EXPECT_EQ(std::memcmp(x.data(), y.data(), kD * 4), 0);
      }
    }
  }
}

TEST(KvDtype, Q8RowsKeepTheirLargestValueAndZeroRowsStayZero) {
  const std::vector<float> x = {0.5f, -2.0f, 1.0f, 0.0f};
  int8_t q[4];
  float scale = 0;
  EncodeKvRow(KvDtype::kQ8_0, x.data(), 4, q, &scale);
  EXPECT_EQ(q[1], -127);
  EXPECT_EQ(q[3], 0);
  EXPECT_FLOAT_EQ(scale, 2.0f / 127);
  const std::vector<float> zero(4, 0.0f);
  EncodeKvRow(KvDtype::kQ8_0, zero.data(), 4, q, &scale);
  EXPECT_EQ(scale, 0.0f);
  float y[4] = {1, 1, 1, 1};
  DecodeKvRow(KvDtype::kQ8_0, q, scale, 4, y);
  for (float e : y) EXPECT_EQ(e, 0.0f);
}

// Rows long enough for the 8-wide F16C conversions and a scalar tail: the
// same bits as the scalar conversions, overflow, infinities, subnormals,
// ties and NaN included.
TEST(KvDtype, SixteenBitRowsAreTheFp16HeaderBits) {
  const std::vector<float> x = {1.0f / 3,
                                -65504.0f,
                                1e-7f,
                                3.14159f,
                                70000.0f,
                                -std::numeric_limits<float>::infinity(),
                                6.1e-5f,
                                5.96e-8f,
                                1.0f + 1.0f / 2048,
                                2049.0f,
                                std::numeric_limits<float>::quiet_NaN()};
  const auto n = static_cast<int32_t>(x.size());
  std::vector<uint16_t> h(n), b(n);
  EncodeKvRow(KvDtype::kF16, x.data(), n, h.data(), nullptr);
  EncodeKvRow(KvDtype::kBf16, x.data(), n, b.data(), nullptr);
  std::vector<float> back(n);
  DecodeKvRow(KvDtype::kF16, h.data(), 1.0f, n, back.data());
  for (int32_t i = 0; i < n; ++i) {
    EXPECT_EQ(h[i], FloatToFp16(x[i])) << i;
    EXPECT_EQ(b[i], FloatToBf16(x[i])) << i;
    const float want = Fp16ToFloat(h[i]);
    EXPECT_EQ(std::memcmp(&back[i], &want, sizeof(float)), 0) << i;
  }
}

}  // namespace
}  // namespace restkv::kernels
