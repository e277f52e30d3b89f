// What the AVX2 panel tiles share (packed_gemm_avx2.cc for Q4_0/Q4_1/Q8_0,
// packed_kquant_avx2.cc's traits for the K-quant tile of kquant_tile.h).
// Each 64-byte panel vector holds 4 consecutive elements of 16 rows; AVX2
// reads it as two 32-byte halves (rows 0..7, 8..15), one pass over the panel
// per half, so the accumulators of up to 4 activation rows stay in the 16
// ymm registers.
//
// Included only by translation units built with AVX2, FMA and F16C; the
// same tiles are built twice in one binary (packed_*_avx2.cc, and
// packed_*_avxvnni.cc with -mavxvnni), so what is here lives in a namespace
// named after the dot the flags give (vnni or pairs), aliased as avx2 in
// each unit: the two builds' inline functions must not be merged by the
// linker (an ODR violation that would run one build's code in the other).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/packed_kquant.h"

#if RESTKV_VNNI_256
#define RESTKV_AVX2_TILE_NS avx2_vnni
#else
#define RESTKV_AVX2_TILE_NS avx2_pairs
#endif

namespace restkv::kernels::cpu::packed_detail {
namespace RESTKV_AVX2_TILE_NS {

constexpr int kMaxRows = 4;  // activation rows per pass

// The 4 activation bytes at `p` in every 32-bit lane.
inline __m256i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// acc + Σ u8·s8 over each group of 4 bytes: vpdpbusd where the build has
// it, else pmaddubsw + pmaddwd (whose int16 pairs the callers keep from
// saturating).
inline __m256i DotAdd(__m256i acc, __m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(acc, u, s);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

// The byte dots of avx2 for DotSum (dot_sum.h).
struct DotOps {
  using I = __m256i;
  static constexpr bool kDirectDot = RESTKV_VNNI_256;
  static I Zero() { return _mm256_setzero_si256(); }
  static I DotAdd(I acc, I u, I s) { return RESTKV_AVX2_TILE_NS::DotAdd(acc, u, s); }
  static I PairDot(I u, I s) { return _mm256_maddubs_epi16(u, s); }
  static I AddPairs(I a, I b) { return _mm256_add_epi16(a, b); }
  static I WidenAdd(I acc, I pairs) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
};

inline __m256i Load(const uint8_t* p) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
}

// Writes the valid rows (of `valid`) in half `h` of R activation rows'
// accumulators to y (row r at y + r·ldy).
template <int R>
void StoreHalf(const __m256 (&acc)[R], float* y, int64_t ldy, int h, int valid) {
  const int n = std::min(8, valid - 8 * h);
  for (int r = 0; r < R; ++r) {
    alignas(32) float out[8];
    _mm256_store_ps(out, acc[r]);
    std::memcpy(y + r * ldy + 8 * h, out, sizeof(float) * static_cast<size_t>(n));
  }
}

// One half of the panel against activation rows [row0, row0 + R).
using HalfTileFn = void (*)(const uint8_t* panel, int64_t blocks, const Q8Activations& x,
                            int64_t row0, float* y, int64_t ldy, int h, int valid);

// Both halves (as far as `valid` rows reach) over all `num_x` activation
// rows, kMaxRows at a time; tiles[R - 1] (of kMaxRows) takes R rows.
inline void RunHalves(const HalfTileFn* tiles, const uint8_t* panel, int64_t blocks,
                      const Q8Activations& x, int64_t row0, int num_x, float* y, int64_t ldy,
                      int valid) {
  for (int h = 0; h < 2 && 8 * h < valid; ++h) {
    for (int r0 = 0; r0 < num_x; r0 += kMaxRows) {
      const int n = std::min(kMaxRows, num_x - r0);
      tiles[n - 1](panel, blocks, x, row0 + r0, y + r0 * ldy, ldy, h, valid);
    }
  }
}

}  // namespace RESTKV_AVX2_TILE_NS
namespace avx2 = RESTKV_AVX2_TILE_NS;
}  // namespace restkv::kernels::cpu::packed_detail
