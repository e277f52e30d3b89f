// AVX-512 VNNI tiles of the K-quant panels (layout in packed_kquant.h): one
// 64-byte vector is 4 consecutive elements of the panel's 16 rows, so one
// vpdpbusd against 4 broadcast activation bytes advances 16 outputs.
#include "kernels/cpu/packed_kquant.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512VNNI__)
#include <immintrin.h>

#include <cstring>
#define RESTKV_HAVE_KQUANT_AVX512 1
// GCC 12's AVX-512 headers build some intrinsics from _mm512_undefined_*(),
// which its flow analysis reports as maybe-uninitialised (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace restkv::kernels::cpu::packed_detail {

#if RESTKV_HAVE_KQUANT_AVX512
namespace {

inline __m512i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

inline __m512 LoadU8AsFloat(const uint8_t* p) {
  return _mm512_cvtepi32_ps(
      _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline __m512 LoadS8AsFloat(const uint8_t* p) {
  return _mm512_cvtepi32_ps(
      _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline __m512 LoadHalves(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Q4_K / Q5_K: per sub-block, t = d·sc·Σqx − dmin·mn·Σx, acc += t·dx.
template <GgmlType T, int R>
void MinTile(const uint8_t* panel, int64_t nsb, const Q8Activations& x, int64_t row0, float* y,
             int64_t ldy, __mmask16 store_mask) {
  constexpr int64_t kBlock = KPanelBlockBytes(T), kSub = KSubBytes(T);
  __m512 acc[R];
  const BlockQ8_1* xb[R];
  const float* xd[R];
  const int32_t* xsum[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm512_setzero_ps();
    xb[r] = x.blocks(row0 + r);
    xd[r] = x.d(row0 + r);
    xsum[r] = x.sum(row0 + r);
  }
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* pb = panel + sb * kBlock;
    const uint8_t* scales = pb + KScalesOffset(T);
    const __m512 d = LoadHalves(scales + kKDOffset);
    const __m512 dmin = LoadHalves(scales + kKDminOffset);
    for (int s = 0; s < 8; ++s) {
      const int64_t b = sb * 8 + s;
      const uint8_t* q = pb + s * kSub;
      __m512i isum[R];
      for (int r = 0; r < R; ++r) isum[r] = _mm512_setzero_si512();
      __m512i high = _mm512_setzero_si512();
      if constexpr (T == GgmlType::kQ5_K) high = _mm512_load_si512(q + 256);
      for (int u = 0; u < 4; ++u) {
        const __m512i raw = _mm512_load_si512(q + u * 64);
        __m512i lo = _mm512_and_si512(raw, nibble);
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble);
        if constexpr (T == GgmlType::kQ5_K) {
          const __m512i sixteen = _mm512_set1_epi8(16);
          lo = _mm512_mask_add_epi8(
              lo, _mm512_test_epi8_mask(high, _mm512_set1_epi8(static_cast<char>(1 << u))), lo,
              sixteen);
          hi = _mm512_mask_add_epi8(
              hi, _mm512_test_epi8_mask(high, _mm512_set1_epi8(static_cast<char>(16 << u))), hi,
              sixteen);
        }
        for (int r = 0; r < R; ++r) {
          isum[r] = _mm512_dpbusd_epi32(isum[r], lo, Broadcast4(xb[r][b].qs + 4 * u));
          isum[r] = _mm512_dpbusd_epi32(isum[r], hi, Broadcast4(xb[r][b].qs + 16 + 4 * u));
        }
      }
      const __m512 sc = _mm512_mul_ps(LoadU8AsFloat(scales + 16 * s), d);
      const __m512 mn = _mm512_mul_ps(LoadU8AsFloat(scales + kKMinsOffset + 16 * s), dmin);
      for (int r = 0; r < R; ++r) {
        const __m512 t =
            _mm512_fmsub_ps(sc, _mm512_cvtepi32_ps(isum[r]),
                            _mm512_mul_ps(mn, _mm512_set1_ps(static_cast<float>(xsum[r][b]))));
        acc[r] = _mm512_fmadd_ps(t, _mm512_set1_ps(xd[r][b]), acc[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(y + r * ldy, store_mask, acc[r]);
}

// Q6_K: per 16-group, t = d·sc·(Σqx − 32Σx), acc += (t_lo + t_hi)·dx.
template <int R>
void Q6Tile(const uint8_t* panel, int64_t nsb, const Q8Activations& x, int64_t row0, float* y,
            int64_t ldy, __mmask16 store_mask) {
  constexpr GgmlType T = GgmlType::kQ6_K;
  constexpr int64_t kBlock = KPanelBlockBytes(T), kSub = KSubBytes(T);
  __m512 acc[R];
  const BlockQ8_1* xb[R];
  const float* xd[R];
  const int32_t* xhalf[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm512_setzero_ps();
    xb[r] = x.blocks(row0 + r);
    xd[r] = x.d(row0 + r);
    xhalf[r] = x.half_sum(row0 + r);
  }
  const __m512i nibble = _mm512_set1_epi8(0x0f), top = _mm512_set1_epi8(0x30);
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* pb = panel + sb * kBlock;
    const uint8_t* scales = pb + KScalesOffset(T);
    const __m512 d = LoadHalves(scales + kKDOffset);
    for (int s = 0; s < 8; ++s) {
      const int64_t b = sb * 8 + s;
      const uint8_t* q = pb + s * kSub;
      const __m512i h0 = _mm512_load_si512(q + 256), h1 = _mm512_load_si512(q + 320);
      __m512i lsum[R], hsum[R];
      for (int r = 0; r < R; ++r) lsum[r] = hsum[r] = _mm512_setzero_si512();
      for (int u = 0; u < 4; ++u) {
        const __m512i raw = _mm512_load_si512(q + u * 64);
        // Bits 2u, 2u+1 of the high planes moved to bits 4, 5 (the 16-bit
        // shifts only spill into bits the mask clears).
        __m512i a = h0, c = h1;
        if (u == 0) a = _mm512_slli_epi16(h0, 4), c = _mm512_slli_epi16(h1, 4);
        if (u == 1) a = _mm512_slli_epi16(h0, 2), c = _mm512_slli_epi16(h1, 2);
        if (u == 3) a = _mm512_srli_epi16(h0, 2), c = _mm512_srli_epi16(h1, 2);
        const __m512i lo = _mm512_or_si512(_mm512_and_si512(raw, nibble), _mm512_and_si512(a, top));
        const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble),
                                           _mm512_and_si512(c, top));
        for (int r = 0; r < R; ++r) {
          lsum[r] = _mm512_dpbusd_epi32(lsum[r], lo, Broadcast4(xb[r][b].qs + 4 * u));
          hsum[r] = _mm512_dpbusd_epi32(hsum[r], hi, Broadcast4(xb[r][b].qs + 16 + 4 * u));
        }
      }
      const __m512 sl = _mm512_mul_ps(LoadS8AsFloat(scales + 32 * s), d);
      const __m512 sh = _mm512_mul_ps(LoadS8AsFloat(scales + 32 * s + 16), d);
      for (int r = 0; r < R; ++r) {
        const __m512 tl =
            _mm512_cvtepi32_ps(_mm512_sub_epi32(lsum[r], _mm512_set1_epi32(32 * xhalf[r][2 * b])));
        const __m512 th = _mm512_cvtepi32_ps(
            _mm512_sub_epi32(hsum[r], _mm512_set1_epi32(32 * xhalf[r][2 * b + 1])));
        const __m512 t = _mm512_fmadd_ps(tl, sl, _mm512_mul_ps(th, sh));
        acc[r] = _mm512_fmadd_ps(t, _mm512_set1_ps(xd[r][b]), acc[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(y + r * ldy, store_mask, acc[r]);
}

template <GgmlType T, int R>
void AnyTile(const uint8_t* panel, int64_t nsb, const Q8Activations& x, int64_t row0, float* y,
             int64_t ldy, __mmask16 mask) {
  if constexpr (T == GgmlType::kQ6_K) {
    Q6Tile<R>(panel, nsb, x, row0, y, ldy, mask);
  } else {
    MinTile<T, R>(panel, nsb, x, row0, y, ldy, mask);
  }
}

using Tile = void (*)(const uint8_t*, int64_t, const Q8Activations&, int64_t, float*, int64_t,
                      __mmask16);

template <GgmlType T>
void Run(const uint8_t* panel, int64_t nsb, const Q8Activations& x, int64_t row0, int num_x,
         float* y, int64_t ldy, int valid) {
  static constexpr Tile kTiles[8] = {AnyTile<T, 1>, AnyTile<T, 2>, AnyTile<T, 3>, AnyTile<T, 4>,
                                     AnyTile<T, 5>, AnyTile<T, 6>, AnyTile<T, 7>, AnyTile<T, 8>};
  kTiles[num_x - 1](panel, nsb, x, row0, y, ldy, static_cast<__mmask16>((1u << valid) - 1));
}

}  // namespace

KTileFn KTileAvx512(GgmlType type) {
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
KTileFn KTileAvx512(GgmlType) { return nullptr; }
#endif

}  // namespace restkv::kernels::cpu::packed_detail
