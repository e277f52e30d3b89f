#include "kernels/cpu/quant_dot.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/fp16.h"

namespace restkv::kernels::cpu {
namespace {

#if RESTKV_HAVE_AVX2
// 32 unsigned nibbles of a Q4 block: low nibbles are elements 0..15, high
// nibbles 16..31.
inline __m256i UnpackNibbles(const uint8_t* qs) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i mask = _mm_set1_epi8(0x0f);
  const __m128i lo = _mm_and_si128(v, mask);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
  return _mm256_set_m128i(hi, lo);
}

// Σ u8·s8 in 8 int32 lanes.
inline __m256i DotU8S8(__m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

inline __m256i LoadX(const BlockQ8_1& b) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
}

// Per weight type: how to get a block's 32 quants as bytes, whether they are
// signed (then |q| and sign(x, q) feed the unsigned x signed dot), and its
// scale and minimum.
struct Q4_0Kind {
  using Block = BlockQ4_0;
  static constexpr bool kSigned = true, kHasMin = false;
  static __m256i Quants(const Block& b) {
    return _mm256_sub_epi8(UnpackNibbles(b.qs), _mm256_set1_epi8(8));
  }
  static float Min(const Block&) { return 0.0f; }
};
struct Q4_1Kind {
  using Block = BlockQ4_1;
  static constexpr bool kSigned = false, kHasMin = true;
  static __m256i Quants(const Block& b) { return UnpackNibbles(b.qs); }
  static float Min(const Block& b) { return Fp16ToFloat(b.m); }
};
struct Q8_0Kind {
  using Block = BlockQ8_0;
  static constexpr bool kSigned = true, kHasMin = false;
  static __m256i Quants(const Block& b) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
  }
  static float Min(const Block&) { return 0.0f; }
};

// W weight rows x R activation rows, every output accumulated block by block
// in the same order regardless of W and R.
template <class K, int W, int R>
void Tile(const uint8_t* w0, int64_t row_bytes, const Q8Activations& x, const int64_t* rows,
          float* out) {
  using Block = typename K::Block;
  __m256 acc[W][R];
  float min_acc[W][R];
  const Q8PanelBlock* xb[R];
  for (int r = 0; r < R; ++r) {
    xb[r] = x.panel_blocks(rows[r]);
    for (int w = 0; w < W; ++w) {
      acc[w][r] = _mm256_setzero_ps();
      min_acc[w][r] = 0.0f;
    }
  }
  const int64_t nb = x.num_blocks();
  for (int64_t b = 0; b < nb; ++b) {
    __m256i xv[R];
    for (int r = 0; r < R; ++r)
      xv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[r][b].qs));
    for (int w = 0; w < W; ++w) {
      const Block& wb = reinterpret_cast<const Block*>(w0 + w * row_bytes)[b];
      const __m256i q = K::Quants(wb);
      const __m256i u = K::kSigned ? _mm256_sign_epi8(q, q) : q;
      const float dw = Fp16ToFloat(wb.d);
      for (int r = 0; r < R; ++r) {
        const __m256i sx = K::kSigned ? _mm256_sign_epi8(xv[r], q) : xv[r];
        acc[w][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DotU8S8(u, sx)),
                                    _mm256_set1_ps(dw * xb[r][b].d), acc[w][r]);
        if constexpr (K::kHasMin) min_acc[w][r] += K::Min(wb) * xb[r][b].s;
      }
    }
  }
  for (int w = 0; w < W; ++w) {
    for (int r = 0; r < R; ++r) out[w * R + r] = HorizontalSum(acc[w][r]) + min_acc[w][r];
  }
}

template <class K>
void TileDispatch(const uint8_t* w0, int64_t row_bytes, int num_w, const Q8Activations& x,
                  const int64_t* rows, int num_x, float* out) {
  using Fn = void (*)(const uint8_t*, int64_t, const Q8Activations&, const int64_t*, float*);
  static constexpr Fn kTable[2][4] = {
      {Tile<K, 1, 1>, Tile<K, 1, 2>, Tile<K, 1, 3>, Tile<K, 1, 4>},
      {Tile<K, 2, 1>, Tile<K, 2, 2>, Tile<K, 2, 3>, Tile<K, 2, 4>},
  };
  kTable[num_w - 1][num_x - 1](w0, row_bytes, x, rows, out);
}
#endif  // RESTKV_HAVE_AVX2

// Q6_K group (of 16) holding half `half` of Q8 block b.
int Q6Group(int64_t b, int half) { return static_cast<int>(2 * (b % 8)) + half; }

// Σ w·x of Q8 block b against sub-block b % 8 of Q4_K / Q5_K super-block
// b / 8, before the activation scale: d·sc·Σqx − dmin·mn·Σx.
float KSubBlockDot(GgmlType type, const void* w, int64_t b, const BlockQ8_1& x) {
  const int s = static_cast<int>(b % 8), c = s / 2, hi = s % 2;
  const uint8_t* qs;
  const uint8_t* qh = nullptr;
  const uint8_t* scales;
  float d, dmin;
  if (type == GgmlType::kQ4_K) {
    const BlockQ4_K& kb = static_cast<const BlockQ4_K*>(w)[b / 8];
    qs = kb.qs, scales = kb.scales, d = Fp16ToFloat(kb.d), dmin = Fp16ToFloat(kb.dmin);
  } else {
    const BlockQ5_K& kb = static_cast<const BlockQ5_K*>(w)[b / 8];
    qs = kb.qs, qh = kb.qh, scales = kb.scales, d = Fp16ToFloat(kb.d), dmin = Fp16ToFloat(kb.dmin);
  }
  int sc, mn;
  KScaleMin(s, scales, &sc, &mn);
  int qx = 0, xs = 0;
  for (int l = 0; l < 32; ++l) {
    int q = (qs[32 * c + l] >> (4 * hi)) & 0x0f;
    if (qh != nullptr) q += 16 * ((qh[l] >> s) & 1);
    qx += q * x.qs[l];
    xs += x.qs[l];
  }
  return d * static_cast<float>(sc) * static_cast<float>(qx) -
         dmin * static_cast<float>(mn) * static_cast<float>(xs);
}

}  // namespace

bool HasQuantDot(GgmlType type) {
  return type == GgmlType::kQ4_0 || type == GgmlType::kQ4_1 || type == GgmlType::kQ8_0;
}

namespace {

// One Q8_1 block of x[32], with the Σq of its halves (elements 0..15,
// 16..31). Round half to even, as ggml's vector path does: nearbyint and
// cvtps2dq both round in the current mode, so both paths give the same
// bytes (the AVX2 one 8 at a time; the scalar one was 3 % of a 1.2B
// prefill profile).
void QuantizeBlockQ8_1(const float* x, BlockQ8_1& y, int32_t& lo, int32_t& hi) {
#if RESTKV_HAVE_AVX2
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 v[4], m = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    m = _mm256_max_ps(m, _mm256_and_ps(v[k], abs_mask));
  }
  const float amax = HorizontalMax(m);
#else
  float amax = 0.0f;
  for (int i = 0; i < kQK8_1; ++i) amax = std::max(amax, std::fabs(x[i]));
#endif
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
#if RESTKV_HAVE_AVX2
  __m256i q[4];
  for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], _mm256_set1_ps(id)));
  // |q| <= 127: the packs never saturate. They interleave 4-element groups;
  // the permutation restores element order.
  const __m256i bytes = _mm256_permutevar8x32_epi32(
      _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])),
      _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(y.qs), bytes);
  auto sum8 = [](__m256i a) {
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    return _mm_cvtsi128_si32(s4);
  };
  lo = sum8(_mm256_add_epi32(q[0], q[1]));
  hi = sum8(_mm256_add_epi32(q[2], q[3]));
#else
  lo = hi = 0;
  for (int i = 0; i < kQK8_1; ++i) {
    const int qi = static_cast<int>(std::nearbyint(x[i] * id));
    y.qs[i] = static_cast<int8_t>(qi);
    (i < kQK8_1 / 2 ? lo : hi) += qi;
  }
#endif
  y.d = FloatToFp16(d);
  y.s = FloatToFp16(d * static_cast<float>(lo + hi));
}

}  // namespace

void QuantizeRowQ8_1(const float* x, BlockQ8_1* y, int64_t n) {
  RESTKV_CHECK_EQ(n % kQK8_1, 0);
  int32_t lo, hi;
  for (int64_t b = 0; b < n / kQK8_1; ++b) QuantizeBlockQ8_1(x + b * kQK8_1, y[b], lo, hi);
}

float DotRowReference(GgmlType type, const void* w, const BlockQ8_1* x, int64_t nb) {
  float sum = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const float dx = Fp16ToFloat(x[b].d);
    int isum = 0;
    switch (type) {
      case GgmlType::kQ4_0: {
        const BlockQ4_0& wb = static_cast<const BlockQ4_0*>(w)[b];
        for (int i = 0; i < 16; ++i) {
          isum += ((wb.qs[i] & 0x0f) - 8) * x[b].qs[i] + ((wb.qs[i] >> 4) - 8) * x[b].qs[i + 16];
        }
        sum += Fp16ToFloat(wb.d) * dx * static_cast<float>(isum);
        break;
      }
      case GgmlType::kQ4_1: {
        const BlockQ4_1& wb = static_cast<const BlockQ4_1*>(w)[b];
        for (int i = 0; i < 16; ++i) {
          isum += (wb.qs[i] & 0x0f) * x[b].qs[i] + (wb.qs[i] >> 4) * x[b].qs[i + 16];
        }
        sum += Fp16ToFloat(wb.d) * dx * static_cast<float>(isum) +
               Fp16ToFloat(wb.m) * Fp16ToFloat(x[b].s);
        break;
      }
      case GgmlType::kQ8_0: {
        const BlockQ8_0& wb = static_cast<const BlockQ8_0*>(w)[b];
        for (int i = 0; i < 32; ++i) isum += wb.qs[i] * x[b].qs[i];
        sum += Fp16ToFloat(wb.d) * dx * static_cast<float>(isum);
        break;
      }
      case GgmlType::kQ4_K:
      case GgmlType::kQ5_K:
        sum += KSubBlockDot(type, w, b, x[b]) * dx;
        break;
      case GgmlType::kQ6_K: {
        // Groups of 16 with their own int8 scales; weights d·sc·(q − 32).
        const BlockQ6_K& wb = static_cast<const BlockQ6_K*>(w)[b / 8];
        const float d = Fp16ToFloat(wb.d);
        float t = 0.0f;
        for (int half = 0; half < 2; ++half) {
          int qx = 0, xs = 0;
          for (int l = 0; l < 16; ++l) {
            const int i = 32 * static_cast<int>(b % 8) + 16 * half + l;  // in the super-block
            const int h = i / 128, g = (i % 128) / 32, k = i % 32;
            const int q = ((wb.ql[64 * h + 32 * (g % 2) + k] >> (4 * (g / 2))) & 0x0f) |
                          (((wb.qh[32 * h + k] >> (2 * g)) & 3) << 4);
            qx += q * x[b].qs[16 * half + l];
            xs += x[b].qs[16 * half + l];
          }
          t += static_cast<float>(qx - 32 * xs) *
               (d * static_cast<float>(wb.scales[Q6Group(b, half)]));
        }
        sum += t * dx;
        break;
      }
      default:
        RESTKV_CHECK(false) << "no quantised dot for type " << static_cast<int>(type);
    }
  }
  return sum;
}

void Q8Activations::Resize(int64_t m, int64_t n) {
  RESTKV_CHECK_EQ(n % kQK8_1, 0);
  n_ = n;
  nb_ = n / kQK8_1;
  if (static_cast<int64_t>(q_.size()) < m * nb_) {
    q_.resize(m * nb_);
    panel_.resize(m * nb_);
  }
}

void Q8Activations::QuantizeRows(const float* x, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    BlockQ8_1* q = q_.data() + r * nb_;
    for (int64_t b = 0; b < nb_; ++b) {
      const int64_t i = r * nb_ + b;
      int32_t lo, hi;
      QuantizeBlockQ8_1(x + r * n_ + b * kQK8_1, q[b], lo, hi);
      Q8PanelBlock& p = panel_[i];
      std::memcpy(p.qs, q[b].qs, sizeof(p.qs));
      p.d = Fp16ToFloat(q[b].d);
      p.s = Fp16ToFloat(q[b].s);
      p.sum = static_cast<float>(lo + hi);
      p.q4_0_offset = -8 * (lo + hi);
      p.q8_0_offset = -128 * (lo + hi);
      p.q6_k_offset[0] = -32 * lo;
      p.q6_k_offset[1] = -32 * hi;
      p.pad = 0;
    }
  }
}

void Q8Activations::Quantize(const float* x, int64_t m, int64_t n) {
  Resize(m, n);
  QuantizeRows(x, 0, m);
}

void DotTile(GgmlType type, const uint8_t* w0, int64_t row_bytes, int num_w, const Q8Activations& x,
             const int64_t* x_rows, int num_x, float* out) {
  RESTKV_CHECK(num_w >= 1 && num_w <= 2 && num_x >= 1 && num_x <= 4) << num_w << "x" << num_x;
#if RESTKV_HAVE_AVX2
  switch (type) {
    case GgmlType::kQ4_0:
      return TileDispatch<Q4_0Kind>(w0, row_bytes, num_w, x, x_rows, num_x, out);
    case GgmlType::kQ4_1:
      return TileDispatch<Q4_1Kind>(w0, row_bytes, num_w, x, x_rows, num_x, out);
    case GgmlType::kQ8_0:
      return TileDispatch<Q8_0Kind>(w0, row_bytes, num_w, x, x_rows, num_x, out);
    default:
      RESTKV_CHECK(false) << "no quantised dot for type " << static_cast<int>(type);
  }
#else
  for (int w = 0; w < num_w; ++w) {
    for (int r = 0; r < num_x; ++r) {
      out[w * num_x + r] =
          DotRowReference(type, w0 + w * row_bytes, x.blocks(x_rows[r]), x.num_blocks());
    }
  }
#endif
}

}  // namespace restkv::kernels::cpu
