// Vector traits for the attention tile (attention_tile.h): the same loop
// over 16-lane zmm registers (AVX-512) or 8-lane ymm registers (AVX2 + FMA +
// F16C, the x86-64-v3 level). Which one a build gets is the build's choice
// (-march): attention.cc is compiled once, with the build's flags.
//
// Each traits struct provides, on F (kLanes floats):
//   Load, Store (unaligned), Set1, Zero, Mul, FMAdd(a, b, c) = a·b + c;
//   LoadRow<DT>(row, v): elements kLanes·v .. kLanes·v + kLanes − 1 of a
//     stored K/V row as f32 (without the q8_0 scale, applied per row);
//   SumLanes(a[kLanes]): lane k is the sum of the lanes of a[k] (one
//     transposing reduction for kLanes scores instead of one per score);
//   StoreScores(p, s, m, max): stores lanes [0, m) of s at p and returns
//     max with those lanes folded in;
//   ReduceMax(F);
//   SoftmaxNumerators(scores, n, max): scores[t] = e^(scores[t] − max) for
//     t < n (scores <= max), returning their sum.
// Included only by attention.cc.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/vec_math.h"
#include "kernels/kv_dtype.h"

namespace restkv::kernels::cpu {

#if defined(__AVX512F__)
struct Avx512AttentionVec {
  using F = __m512;
  static constexpr int kLanes = 16;

  static F Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F Set1(float v) { return _mm512_set1_ps(v); }
  static F Zero() { return _mm512_setzero_ps(); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F FMAdd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }

  template <KvDtype DT>
  static F LoadRow(const uint8_t* row, int v) {
    if constexpr (DT == KvDtype::kF32) {
      return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + 16 * v);
    } else if constexpr (DT == KvDtype::kF16) {
      return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * v)));
    } else if constexpr (DT == KvDtype::kBf16) {
      const __m512i w =
          _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * v)));
      return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
    } else {
      return _mm512_cvtepi32_ps(
          _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * v))));
    }
  }

  // Three levels of in-lane and cross-lane shuffles: 45 instructions for 16
  // sums.
  static F SumLanes(const F* a) {
    F b[8];
    for (int i = 0; i < 8; ++i) {
      b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                           _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    }
    F c[4];  // per 128-bit lane: partial sums of keys 4i..4i+3
    for (int i = 0; i < 4; ++i) {
      c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44),
                           _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xee));
    }
    const F d0 = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88),
                               _mm512_shuffle_f32x4(c[0], c[1], 0xdd));
    const F d1 = _mm512_add_ps(_mm512_shuffle_f32x4(c[2], c[3], 0x88),
                               _mm512_shuffle_f32x4(c[2], c[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(d0, d1, 0x88), _mm512_shuffle_f32x4(d0, d1, 0xdd));
  }

  static F StoreScores(float* p, F s, int m, F max) {
    const auto mask = static_cast<__mmask16>(m == 16 ? 0xffff : (1u << m) - 1);
    _mm512_mask_storeu_ps(p, mask, s);
    return _mm512_mask_max_ps(max, mask, max, s);
  }
  static float ReduceMax(F v) { return _mm512_reduce_max_ps(v); }

  // e^x for x <= 0, within ~2 ulp of expf: x = n·ln2 + r with |r| <= ln2/2,
  // e^r by its degree-6 Taylor polynomial, 2^n by scalef. The scalar expf per
  // key was most of the time of long-context attention.
  static F ExpNonPositive(F x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const F n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    F r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    F p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
  }

  static float SoftmaxNumerators(float* scores, int32_t n, float max_score) {
    const F m = _mm512_set1_ps(max_score);
    F sum = _mm512_setzero_ps();
    int32_t t = 0;
    for (; t + 16 <= n; t += 16) {
      const F e = ExpNonPositive(_mm512_sub_ps(_mm512_loadu_ps(scores + t), m));
      _mm512_storeu_ps(scores + t, e);
      sum = _mm512_add_ps(sum, e);
    }
    if (t < n) {
      const auto k = static_cast<__mmask16>((1u << (n - t)) - 1);
      const F e = ExpNonPositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, scores + t), m));
      _mm512_mask_storeu_ps(scores + t, k, e);
      sum = _mm512_mask_add_ps(sum, k, sum, e);
    }
    return _mm512_reduce_add_ps(sum);
  }
};
#endif

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
struct Avx2AttentionVec {
  using F = __m256;
  static constexpr int kLanes = 8;

  static F Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F Set1(float v) { return _mm256_set1_ps(v); }
  static F Zero() { return _mm256_setzero_ps(); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F FMAdd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }

  template <KvDtype DT>
  static F LoadRow(const uint8_t* row, int v) {
    if constexpr (DT == KvDtype::kF32) {
      return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + 8 * v);
    } else if constexpr (DT == KvDtype::kF16) {
      return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * v)));
    } else if constexpr (DT == KvDtype::kBf16) {
      const __m256i w =
          _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * v)));
      return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    } else {
      return _mm256_cvtepi32_ps(
          _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + 8 * v))));
    }
  }

  // Two levels of horizontal adds within the 128-bit halves, then one
  // exchange of the halves.
  static F SumLanes(const F* a) {
    const F b0 = _mm256_hadd_ps(a[0], a[1]), b1 = _mm256_hadd_ps(a[2], a[3]);
    const F b2 = _mm256_hadd_ps(a[4], a[5]), b3 = _mm256_hadd_ps(a[6], a[7]);
    // c0: per half, the partial sums of a[0..3]; c1: of a[4..7].
    const F c0 = _mm256_hadd_ps(b0, b1), c1 = _mm256_hadd_ps(b2, b3);
    return _mm256_add_ps(_mm256_permute2f128_ps(c0, c1, 0x20),
                         _mm256_permute2f128_ps(c0, c1, 0x31));
  }

  // Lanes below m set (all bits), the others clear.
  static __m256i PrefixMask(int m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static F StoreScores(float* p, F s, int m, F max) {
    if (m == 8) {
      _mm256_storeu_ps(p, s);
      return _mm256_max_ps(max, s);
    }
    const __m256i mask = PrefixMask(m);
    _mm256_maskstore_ps(p, mask, s);
    return _mm256_blendv_ps(max, _mm256_max_ps(max, s), _mm256_castsi256_ps(mask));
  }
  static float ReduceMax(F v) { return HorizontalMax(v); }

  static F ExpNonPositive(F x) { return cpu::ExpNonPositive(x); }

  static float SoftmaxNumerators(float* scores, int32_t n, float max_score) {
    const F m = _mm256_set1_ps(max_score);
    F sum = _mm256_setzero_ps();
    int32_t t = 0;
    for (; t + 8 <= n; t += 8) {
      const F e = ExpNonPositive(_mm256_sub_ps(_mm256_loadu_ps(scores + t), m));
      _mm256_storeu_ps(scores + t, e);
      sum = _mm256_add_ps(sum, e);
    }
    if (t < n) {
      const __m256i mask = PrefixMask(n - t);
      const F e =
          _mm256_and_ps(ExpNonPositive(_mm256_sub_ps(_mm256_maskload_ps(scores + t, mask), m)),
                        _mm256_castsi256_ps(mask));
      _mm256_maskstore_ps(scores + t, mask, e);
      sum = _mm256_add_ps(sum, e);
    }
    return HorizontalSum(sum);
  }
};
#endif

}  // namespace restkv::kernels::cpu
