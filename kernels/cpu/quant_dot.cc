#include "kernels/cpu/quant_dot.h"

#include <cmath>

#include "common/check.h"
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

template <int R>
void DotQ4_1(const BlockQ4_1* w, const BlockQ8_1* const* x, int64_t nb, float* out) {
  __m256 acc[R];
  float min_sum[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    min_sum[r] = 0.0f;
  }
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i q = UnpackNibbles(w[b].qs);
    const float dw = Fp16ToFloat(w[b].d), mw = Fp16ToFloat(w[b].m);
    for (int r = 0; r < R; ++r) {
      const BlockQ8_1& xb = x[r][b];
      const __m256 scale = _mm256_set1_ps(dw * Fp16ToFloat(xb.d));
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DotU8S8(q, LoadX(xb))), scale, acc[r]);
      min_sum[r] += mw * Fp16ToFloat(xb.s);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = HorizontalSum(acc[r]) + min_sum[r];
}

// Q4_0 values are nibble - 8, signed: same sign trick as Q8_0 below.
template <int R>
void DotQ4_0(const BlockQ4_0* w, const BlockQ8_1* const* x, int64_t nb, float* out) {
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  const __m256i eight = _mm256_set1_epi8(8);
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i q = _mm256_sub_epi8(UnpackNibbles(w[b].qs), eight);
    const __m256i abs_q = _mm256_sign_epi8(q, q);
    const float dw = Fp16ToFloat(w[b].d);
    for (int r = 0; r < R; ++r) {
      const BlockQ8_1& xb = x[r][b];
      const __m256 scale = _mm256_set1_ps(dw * Fp16ToFloat(xb.d));
      const __m256i sx = _mm256_sign_epi8(LoadX(xb), q);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DotU8S8(abs_q, sx)), scale, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = HorizontalSum(acc[r]);
}

// Signed x signed: move w's sign onto x so the unsigned operand is |w|.
template <int R>
void DotQ8_0(const BlockQ8_0* w, const BlockQ8_1* const* x, int64_t nb, float* out) {
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs));
    const __m256i abs_q = _mm256_sign_epi8(q, q);
    const float dw = Fp16ToFloat(w[b].d);
    for (int r = 0; r < R; ++r) {
      const BlockQ8_1& xb = x[r][b];
      const __m256 scale = _mm256_set1_ps(dw * Fp16ToFloat(xb.d));
      const __m256i sx = _mm256_sign_epi8(LoadX(xb), q);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DotU8S8(abs_q, sx)), scale, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = HorizontalSum(acc[r]);
}

template <int R>
void DotRowsFixed(GgmlType type, const void* w, const BlockQ8_1* const* x, int64_t nb,
                  float* out) {
  switch (type) {
    case GgmlType::kQ4_0:
      DotQ4_0<R>(static_cast<const BlockQ4_0*>(w), x, nb, out);
      return;
    case GgmlType::kQ4_1:
      DotQ4_1<R>(static_cast<const BlockQ4_1*>(w), x, nb, out);
      return;
    case GgmlType::kQ8_0:
      DotQ8_0<R>(static_cast<const BlockQ8_0*>(w), x, nb, out);
      return;
    default:
      RESTKV_CHECK(false) << "no quantised dot for type " << static_cast<int>(type);
  }
}
#endif  // RESTKV_HAVE_AVX2

}  // namespace

bool HasQuantDot(GgmlType type) {
  return type == GgmlType::kQ4_0 || type == GgmlType::kQ4_1 || type == GgmlType::kQ8_0;
}

void QuantizeRowQ8_1(const float* x, BlockQ8_1* y, int64_t n) {
  RESTKV_CHECK_EQ(n % kQK8_1, 0);
  for (int64_t b = 0; b < n / kQK8_1; ++b) {
    const float* xb = x + b * kQK8_1;
    float amax = 0.0f;
    for (int i = 0; i < kQK8_1; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int i = 0; i < kQK8_1; ++i) {
      // nearbyint: round half to even, as ggml's vector path does.
      const int q = static_cast<int>(std::nearbyint(xb[i] * id));
      y[b].qs[i] = static_cast<int8_t>(q);
      sum += q;
    }
    y[b].d = FloatToFp16(d);
    y[b].s = FloatToFp16(d * static_cast<float>(sum));
  }
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
      default:
        RESTKV_CHECK(false) << "no quantised dot for type " << static_cast<int>(type);
    }
  }
  return sum;
}

void DotRows(GgmlType type, const void* w, const BlockQ8_1* const* x, int num_x, int64_t nb,
             float* out) {
  RESTKV_CHECK(num_x >= 1 && num_x <= 4) << num_x;
#if RESTKV_HAVE_AVX2
  switch (num_x) {
    case 1:
      return DotRowsFixed<1>(type, w, x, nb, out);
    case 2:
      return DotRowsFixed<2>(type, w, x, nb, out);
    case 3:
      return DotRowsFixed<3>(type, w, x, nb, out);
    default:
      return DotRowsFixed<4>(type, w, x, nb, out);
  }
#else
  for (int r = 0; r < num_x; ++r) out[r] = DotRowReference(type, w, x[r], nb);
#endif
}

}  // namespace restkv::kernels::cpu
