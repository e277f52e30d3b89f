#include "kernels/cpu/dequantize.h"

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/quant_fixture_testutil.h"
#include "kernels/fp16.h"
#include "kernels/ggml_type.h"

namespace restkv::kernels {
namespace {

// Dequantises one block of `type`.
template <typename Block>
std::vector<float> One(GgmlType type, const Block& block) {
  const GgmlTypeTraits* t = GetGgmlTypeTraits(type);
  std::vector<float> y(t->block_size);
  DequantizeRow(type, &block, y.data(), t->block_size);
  return y;
}

// The hand-made blocks below pick scales that are exact in fp16 and small
// integers, so every expected value is exact and written out by hand.

TEST(DequantizeHandBlocks, Q4_0) {
  BlockQ4_0 b{};
  b.d = FloatToFp16(0.5f);
  for (int i = 0; i < 16; ++i) b.qs[i] = static_cast<uint8_t>(i | ((15 - i) << 4));
  const std::vector<float> y = One(GgmlType::kQ4_0, b);
  EXPECT_EQ(y[0], -4.0f);   // (0 - 8) * 0.5
  EXPECT_EQ(y[15], 3.5f);   // (15 - 8) * 0.5
  EXPECT_EQ(y[16], 3.5f);   // high nibble of qs[0] = 15
  EXPECT_EQ(y[31], -4.0f);  // high nibble of qs[15] = 0
  EXPECT_EQ(y[9], 0.5f);
}

TEST(DequantizeHandBlocks, Q4_1) {
  BlockQ4_1 b{};
  b.d = FloatToFp16(0.25f);
  b.m = FloatToFp16(-1.0f);
  for (int i = 0; i < 16; ++i) b.qs[i] = static_cast<uint8_t>(i | (3 << 4));
  const std::vector<float> y = One(GgmlType::kQ4_1, b);
  EXPECT_EQ(y[0], -1.0f);    // 0 * 0.25 - 1
  EXPECT_EQ(y[15], 2.75f);   // 15 * 0.25 - 1
  EXPECT_EQ(y[20], -0.25f);  // 3 * 0.25 - 1
}

TEST(DequantizeHandBlocks, Q5_0) {
  BlockQ5_0 b{};
  b.d = FloatToFp16(1.0f);
  b.qs[0] = 0x03;                              // element 0: low 3, element 16: low 0
  b.qs[1] = 0x20;                              // element 1: low 0, element 17: low 2
  const uint32_t qh = (1u << 0) | (1u << 17);  // 5th bit of elements 0 and 17
  std::memcpy(b.qh, &qh, 4);
  const std::vector<float> y = One(GgmlType::kQ5_0, b);
  EXPECT_EQ(y[0], 3.0f);    // 19 - 16
  EXPECT_EQ(y[1], -16.0f);  // 0 - 16
  EXPECT_EQ(y[16], -16.0f);
  EXPECT_EQ(y[17], 2.0f);  // 18 - 16
}

TEST(DequantizeHandBlocks, Q5_1) {
  BlockQ5_1 b{};
  b.d = FloatToFp16(2.0f);
  b.m = FloatToFp16(0.5f);
  b.qs[5] = 0xff;  // elements 5 and 21 low nibbles 15
  const uint32_t qh = 1u << 21;
  std::memcpy(b.qh, &qh, 4);
  const std::vector<float> y = One(GgmlType::kQ5_1, b);
  EXPECT_EQ(y[5], 30.5f);   // 15 * 2 + 0.5
  EXPECT_EQ(y[21], 62.5f);  // 31 * 2 + 0.5
  EXPECT_EQ(y[0], 0.5f);
}

TEST(DequantizeHandBlocks, Q8_0) {
  BlockQ8_0 b{};
  b.d = FloatToFp16(0.125f);
  for (int i = 0; i < 32; ++i) b.qs[i] = static_cast<int8_t>(i - 16);
  b.qs[31] = -128;
  const std::vector<float> y = One(GgmlType::kQ8_0, b);
  EXPECT_EQ(y[0], -2.0f);
  EXPECT_EQ(y[17], 0.125f);
  EXPECT_EQ(y[31], -16.0f);
}

TEST(DequantizeHandBlocks, Q2_K) {
  BlockQ2_K b{};
  b.d = FloatToFp16(0.5f);
  b.dmin = FloatToFp16(0.25f);
  b.scales[0] = 0x23;     // sub-block 0: scale 3, min 2
  b.scales[6] = 0x1f;     // sub-block 6: scale 15, min 1
  b.scales[15] = 0xf7;    // sub-block 15: scale 7, min 15
  b.qs[0] = 0b11000010;   // element 0 (shift 0) = 2, element 96 (shift 6) = 3
  b.qs[63] = 0b01000000;  // element 255 (half 1, shift 6, l 31) = 1
  const std::vector<float> y = One(GgmlType::kQ2_K, b);
  EXPECT_EQ(y[0], 2.5f);      // 0.5*3*2 - 0.25*2
  EXPECT_EQ(y[96], 22.25f);   // 0.5*15*3 - 0.25*1
  EXPECT_EQ(y[255], -0.25f);  // 0.5*7*1 - 0.25*15
  EXPECT_EQ(y[1], -0.5f);     // q 0: -0.25*2
}

TEST(DequantizeHandBlocks, Q3_K) {
  BlockQ3_K b{};
  b.d = FloatToFp16(2.0f);
  // Stored scales (value + 32): s0 = 33, s6 = 63, s13 = 5, the rest 0.
  b.scales[0] = 0x01;     // s0 low nibble 1
  b.scales[8] = 0x02;     // s0 high bits 2 (shift 0)
  b.scales[6] = 0x0f;     // s6 low nibble 15
  b.scales[10] = 0x0c;    // s6 high bits 3 (byte 8 + 6 % 4, shift 2 * (6 / 4))
  b.scales[5] = 0x50;     // s13 low nibble 5 (high nibble of byte 13 - 8)
  b.qs[0] = 0b11000001;   // element 0 low bits 1, element 96 low bits 3
  b.hmask[0] = 0x01;      // element 0 high bit set, element 96 (bit 3) clear
  b.qs[48] = 0b00100000;  // element 208 (half 1, group 2, l 16): low bits 2
  b.hmask[16] = 0x40;     // element 208 high bit (bit 4 + 2) set
  const std::vector<float> y = One(GgmlType::kQ3_K, b);
  EXPECT_EQ(y[0], 2.0f);       // 2 * (33-32) * 1
  EXPECT_EQ(y[96], -62.0f);    // 2 * (63-32) * (3-4)
  EXPECT_EQ(y[208], -108.0f);  // 2 * (5-32) * 2
  EXPECT_EQ(y[1], -8.0f);      // 2 * (33-32) * (0-4)
  EXPECT_EQ(y[40], 256.0f);    // sub-block 2 scale 0-32: 2 * -32 * -4
}

TEST(DequantizeHandBlocks, Q4_K) {
  BlockQ4_K b{};
  b.d = FloatToFp16(1.0f);
  b.dmin = FloatToFp16(0.5f);
  b.scales[0] = 3;     // sub-block 0 scale 3
  b.scales[4] = 2;     // sub-block 0 min 2
  b.scales[1] = 0x81;  // sub-block 1 scale 1; top bits: sub-block 5 scale high 2
  b.scales[5] = 0xc0;  // sub-block 1 min 0; top bits: sub-block 5 min high 3
  b.scales[9] = 0x25;  // sub-block 5 scale low 5, min low 2 -> scale 37, min 50
  b.qs[0] = 0xa7;      // element 0 = 7, element 32 = 10
  b.qs[64] = 0xf0;     // element 128 = 0, element 160 = 15
  const std::vector<float> y = One(GgmlType::kQ4_K, b);
  EXPECT_EQ(y[0], 20.0f);     // 1*3*7 - 0.5*2
  EXPECT_EQ(y[32], 10.0f);    // 1*1*10 - 0
  EXPECT_EQ(y[160], 530.0f);  // 37*15 - 0.5*50
  EXPECT_EQ(y[128], 0.0f);    // sub-block 4: scale 0, min 0
  EXPECT_EQ(y[1], -1.0f);     // q 0: -0.5*2
}

TEST(DequantizeHandBlocks, Q5_K) {
  BlockQ5_K b{};
  b.d = FloatToFp16(1.0f);
  b.dmin = FloatToFp16(0.5f);
  b.scales[0] = 3;
  b.scales[4] = 2;
  b.scales[1] = 0x81;
  b.scales[5] = 0xc0;
  b.scales[9] = 0x25;
  b.qs[0] = 0xa7;
  b.qs[64] = 0xf0;
  b.qh[0] = 0x21;  // 5th bit of element 0 (bit 0) and element 160 (bit 5)
  const std::vector<float> y = One(GgmlType::kQ5_K, b);
  EXPECT_EQ(y[0], 68.0f);      // 3*23 - 1
  EXPECT_EQ(y[32], 10.0f);     // bit 1 clear
  EXPECT_EQ(y[160], 1122.0f);  // 37*31 - 25
}

TEST(DequantizeHandBlocks, Q6_K) {
  BlockQ6_K b{};
  b.d = FloatToFp16(0.5f);
  b.scales[0] = -3;
  b.scales[2] = 7;
  b.scales[4] = 5;
  b.scales[12] = -128;
  b.ql[0] = 0x5a;         // element 0 low 0xa, element 64 low 0x5
  b.ql[32] = 0x03;        // element 32 low 3
  b.qh[0] = 0b00100111;   // element 0 high 3, element 32 high 1, element 64 high 2
  b.ql[72] = 0xf0;        // element 200 (half 1, group 2, l 8) low 15
  b.qh[40] = 0b00110000;  // element 200 high 3
  const std::vector<float> y = One(GgmlType::kQ6_K, b);
  EXPECT_EQ(y[0], -39.0f);      // 0.5 * -3 * (58-32)
  EXPECT_EQ(y[32], -45.5f);     // 0.5 * 7 * (19-32)
  EXPECT_EQ(y[64], 12.5f);      // 0.5 * 5 * (37-32)
  EXPECT_EQ(y[200], -1984.0f);  // 0.5 * -128 * (63-32)
  EXPECT_EQ(y[1], 48.0f);       // 0.5 * -3 * (0-32)
}

TEST(DequantizeHandBlocks, F16AndBf16) {
  const uint16_t f16[] = {0x3c00, 0xc000, 0x0001, 0x7bff};
  float y[4];
  DequantizeRow(GgmlType::kF16, f16, y, 4);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -2.0f);
  EXPECT_EQ(y[2], std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(y[3], 65504.0f);
  const uint16_t bf16[] = {0x3f80, 0xc040, 0x0001, 0x4049};
  DequantizeRow(GgmlType::kBF16, bf16, y, 4);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], -3.0f);
  EXPECT_EQ(y[2], std::ldexp(1.0f, -133));
  EXPECT_EQ(y[3], 3.140625f);
}

TEST(DequantizeHandBlocks, RowOfSeveralBlocks) {
  BlockQ8_0 b[3] = {};
  for (int k = 0; k < 3; ++k) {
    b[k].d = FloatToFp16(static_cast<float>(k + 1));
    b[k].qs[0] = 1;
  }
  std::vector<float> y(96);
  DequantizeRow(GgmlType::kQ8_0, b, y.data(), 96);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[32], 2.0f);
  EXPECT_EQ(y[64], 3.0f);
  EXPECT_EQ(y[65], 0.0f);
}

// Random blocks against gguf-py's dequantize, bit for bit.
TEST(DequantizeGgufPy, MatchesEverySupportedType) {
  auto fixture = testing::LoadQuantFixture();
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  std::set<std::string> covered;
  for (const auto& rec : fixture->dequant) {
    SCOPED_TRACE(rec.type);
    GgmlType type = GgmlType::kF32;
    bool found = false;
    for (uint32_t id = 0; id < 64 && !found; ++id) {
      const GgmlTypeTraits* t = GetGgmlTypeTraits(id);
      if (t != nullptr && t->name == rec.type) {
        type = static_cast<GgmlType>(id);
        found = true;
      }
    }
    ASSERT_TRUE(found);
    ASSERT_EQ(static_cast<int64_t>(rec.blocks.size()), RowBytes(type, rec.n));
    // Copy into 8-aligned storage: the string's bytes are only 1-aligned in
    // principle.
    std::vector<uint64_t> src((rec.blocks.size() + 7) / 8);
    std::memcpy(src.data(), rec.blocks.data(), rec.blocks.size());
    std::vector<float> got(rec.n);
    DequantizeRow(type, src.data(), got.data(), rec.n);
    int mismatches = 0;
    for (int64_t i = 0; i < rec.n; ++i) {
      uint32_t a, b;
      std::memcpy(&a, &got[i], 4);
      std::memcpy(&b, &rec.values[i], 4);
      if (a != b && ++mismatches <= 5) {
        ADD_FAILURE() << "element " << i << ": got " << got[i] << ", gguf-py " << rec.values[i];
      }
    }
    EXPECT_EQ(mismatches, 0);
    covered.insert(rec.type);
  }
  for (uint32_t id = 1; id < 64; ++id) {  // F32 is a copy and needs no fixture
    const GgmlTypeTraits* t = GetGgmlTypeTraits(id);
    if (t != nullptr && t->supported) {
      EXPECT_TRUE(covered.count(std::string(t->name))) << t->name << " has no gguf-py fixture";
    }
  }
}

}  // namespace
}  // namespace restkv::kernels
