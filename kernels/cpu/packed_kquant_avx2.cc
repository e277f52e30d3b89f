// AVX2 tiles of the K-quant panels (layout in packed_kquant.h), for CPUs
// without AVX-512: each 64-byte panel vector is read as two 32-byte halves
// (rows 0..7, rows 8..15), each half a separate pass over the panel so that
// the accumulators of 4 activation rows stay in the 16 ymm registers.
// Unsigned x signed byte dots use AVX-VNNI's vpdpbusd where the build has it,
// else pmaddubsw + pmaddwd (no saturation: 6-bit weights x 8-bit activations,
// a pair sums to at most 2·63·128).
#include "kernels/cpu/packed_kquant.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include "kernels/cpu/avx2_tile.h"
#define RESTKV_HAVE_KQUANT_AVX2 1
#endif

namespace restkv::kernels::cpu::packed_detail {

#if RESTKV_HAVE_KQUANT_AVX2
namespace {

using avx2::Broadcast4;
using avx2::DotAdd;
using avx2::Load;

inline __m256 LoadU8AsFloat(const uint8_t* p) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline __m256 LoadS8AsFloat(const uint8_t* p) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline __m256 LoadHalves(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Rows 8h..8h+7 of the panel against activation rows [row0, row0 + R).
template <GgmlType T, int R>
void HalfTile(const uint8_t* panel, int64_t nsb, const Q8Activations& x, int64_t row0, float* y,
              int64_t ldy, int h, int valid) {
  constexpr int64_t kBlock = KPanelBlockBytes(T), kSub = KSubBytes(T);
  __m256 acc[R];
  const BlockQ8_1* xb[R];
  const float* xd[R];
  const int32_t* xs[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    xb[r] = x.blocks(row0 + r);
    xd[r] = x.d(row0 + r);
    xs[r] = T == GgmlType::kQ6_K ? x.half_sum(row0 + r) : x.sum(row0 + r);
  }
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const int64_t off = 32 * h;  // byte offset of this half in every vector
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* pb = panel + sb * kBlock;
    const uint8_t* scales = pb + KScalesOffset(T);
    const __m256 d = LoadHalves(scales + kKDOffset + 16 * h);
    for (int s = 0; s < 8; ++s) {
      const int64_t b = sb * 8 + s;
      const uint8_t* q = pb + s * kSub + off;
      if constexpr (T == GgmlType::kQ6_K) {
        const __m256i top = _mm256_set1_epi8(0x30);
        const __m256i h0 = Load(q + 256), h1 = Load(q + 320);
        __m256i lsum[R], hsum[R];
        for (int r = 0; r < R; ++r) lsum[r] = hsum[r] = _mm256_setzero_si256();
        for (int u = 0; u < 4; ++u) {
          const __m256i raw = Load(q + u * 64);
          __m256i a = h0, c = h1;
          if (u == 0) a = _mm256_slli_epi16(h0, 4), c = _mm256_slli_epi16(h1, 4);
          if (u == 1) a = _mm256_slli_epi16(h0, 2), c = _mm256_slli_epi16(h1, 2);
          if (u == 3) a = _mm256_srli_epi16(h0, 2), c = _mm256_srli_epi16(h1, 2);
          const __m256i lo =
              _mm256_or_si256(_mm256_and_si256(raw, nibble), _mm256_and_si256(a, top));
          const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), nibble),
                                             _mm256_and_si256(c, top));
          for (int r = 0; r < R; ++r) {
            lsum[r] = DotAdd(lsum[r], lo, Broadcast4(xb[r][b].qs + 4 * u));
            hsum[r] = DotAdd(hsum[r], hi, Broadcast4(xb[r][b].qs + 16 + 4 * u));
          }
        }
        const __m256 sl = _mm256_mul_ps(LoadS8AsFloat(scales + 32 * s + 8 * h), d);
        const __m256 sh = _mm256_mul_ps(LoadS8AsFloat(scales + 32 * s + 16 + 8 * h), d);
        for (int r = 0; r < R; ++r) {
          const __m256 tl =
              _mm256_cvtepi32_ps(_mm256_sub_epi32(lsum[r], _mm256_set1_epi32(32 * xs[r][2 * b])));
          const __m256 th = _mm256_cvtepi32_ps(
              _mm256_sub_epi32(hsum[r], _mm256_set1_epi32(32 * xs[r][2 * b + 1])));
          const __m256 t = _mm256_fmadd_ps(tl, sl, _mm256_mul_ps(th, sh));
          acc[r] = _mm256_fmadd_ps(t, _mm256_set1_ps(xd[r][b]), acc[r]);
        }
      } else {
        __m256i isum[R];
        for (int r = 0; r < R; ++r) isum[r] = _mm256_setzero_si256();
        __m256i high = _mm256_setzero_si256();
        if constexpr (T == GgmlType::kQ5_K) high = Load(q + 256);
        for (int u = 0; u < 4; ++u) {
          const __m256i raw = Load(q + u * 64);
          __m256i lo = _mm256_and_si256(raw, nibble);
          __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nibble);
          if constexpr (T == GgmlType::kQ5_K) {
            // Bit u (low half) / 4+u (high half) of the plane, moved to bit 4.
            const __m256i bit4 = _mm256_set1_epi8(0x10);
            const __m256i bl = u == 0   ? _mm256_slli_epi16(high, 4)
                               : u == 1 ? _mm256_slli_epi16(high, 3)
                               : u == 2 ? _mm256_slli_epi16(high, 2)
                                        : _mm256_slli_epi16(high, 1);
            lo = _mm256_or_si256(lo, _mm256_and_si256(bl, bit4));
            const __m256i bh = u == 0 ? high : _mm256_srli_epi16(high, u);
            hi = _mm256_or_si256(hi, _mm256_and_si256(bh, bit4));
          }
          for (int r = 0; r < R; ++r) {
            isum[r] = DotAdd(isum[r], lo, Broadcast4(xb[r][b].qs + 4 * u));
            isum[r] = DotAdd(isum[r], hi, Broadcast4(xb[r][b].qs + 16 + 4 * u));
          }
        }
        const __m256 dmin = LoadHalves(scales + kKDminOffset + 16 * h);
        const __m256 sc = _mm256_mul_ps(LoadU8AsFloat(scales + 16 * s + 8 * h), d);
        const __m256 mn =
            _mm256_mul_ps(LoadU8AsFloat(scales + kKMinsOffset + 16 * s + 8 * h), dmin);
        for (int r = 0; r < R; ++r) {
          const __m256 t =
              _mm256_fmsub_ps(sc, _mm256_cvtepi32_ps(isum[r]),
                              _mm256_mul_ps(mn, _mm256_set1_ps(static_cast<float>(xs[r][b]))));
          acc[r] = _mm256_fmadd_ps(t, _mm256_set1_ps(xd[r][b]), acc[r]);
        }
      }
    }
  }
  avx2::StoreHalf(acc, y, ldy, h, valid);
}

template <GgmlType T>
void Run(const uint8_t* panel, int64_t nsb, const Q8Activations& x, int64_t row0, int num_x,
         float* y, int64_t ldy, int valid) {
  static constexpr avx2::HalfTileFn kTiles[avx2::kMaxRows] = {HalfTile<T, 1>, HalfTile<T, 2>,
                                                              HalfTile<T, 3>, HalfTile<T, 4>};
  avx2::RunHalves(kTiles, panel, nsb, x, row0, num_x, y, ldy, valid);
}

}  // namespace

KTileFn KTileAvx2(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_K:
      return Run<GgmlType::kQ4_K>;
    case GgmlType::kQ5_K:
      return Run<GgmlType::kQ5_K>;
    case GgmlType::kQ6_K:
      return Run<GgmlType::kQ6_K>;
    default:
      return nullptr;
  }
}
#else
KTileFn KTileAvx2(GgmlType) { return nullptr; }
#endif

}  // namespace restkv::kernels::cpu::packed_detail
