// GGML tensor element types as stored in GGUF files, and their block layouts.
//
// A quantised row of `n` elements is n / block_size blocks laid out back to
// back; block layouts match ggml's exactly (GGUF files are mmapped and read in
// place). Values are little-endian. Legend: QK = elements per block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace restkv::kernels {

// Numeric ids as in the GGUF format; other ids are not supported.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30,
};

struct GgmlTypeTraits {
  std::string_view name;
  int64_t block_size;  // elements per block
  int64_t type_size;   // bytes per block
  bool supported;      // restkv can dequantise it
};

// Returns nullptr for ids restkv does not know.
const GgmlTypeTraits* GetGgmlTypeTraits(uint32_t type_id);
inline const GgmlTypeTraits* GetGgmlTypeTraits(GgmlType type) {
  return GetGgmlTypeTraits(static_cast<uint32_t>(type));
}

// Bytes of one row of `n` elements. REQUIRES: traits known, n % block_size == 0.
int64_t RowBytes(GgmlType type, int64_t n);

inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
inline constexpr int kQK5_0 = 32;
inline constexpr int kQK5_1 = 32;
inline constexpr int kQK8_0 = 32;
inline constexpr int kQK8_1 = 32;
inline constexpr int kQK_K = 256;
inline constexpr int kKScaleSize = 12;

using Half = uint16_t;  // IEEE binary16 bits

struct BlockQ4_0 {
  Half d;                  // scale
  uint8_t qs[kQK4_0 / 2];  // nibbles: element i in low nibble of qs[i], i+16 in high
};
struct BlockQ4_1 {
  Half d;  // scale
  Half m;  // minimum
  uint8_t qs[kQK4_1 / 2];
};
struct BlockQ5_0 {
  Half d;
  uint8_t qh[4];  // 5th bits
  uint8_t qs[kQK5_0 / 2];
};
struct BlockQ5_1 {
  Half d;
  Half m;
  uint8_t qh[4];
  uint8_t qs[kQK5_1 / 2];
};
struct BlockQ8_0 {
  Half d;
  int8_t qs[kQK8_0];
};
struct BlockQ8_1 {
  Half d;  // scale
  Half s;  // d * sum(qs)
  int8_t qs[kQK8_1];
};
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // 4-bit scales and mins
  uint8_t qs[kQK_K / 4];
  Half d;
  Half dmin;
};
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  Half d;
};
struct BlockQ4_K {
  Half d;
  Half dmin;
  uint8_t scales[kKScaleSize];  // 6-bit scales and mins
  uint8_t qs[kQK_K / 2];
};
struct BlockQ5_K {
  Half d;
  Half dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  Half d;
};
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

}  // namespace restkv::kernels
