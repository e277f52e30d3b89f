#include "kernels/cpu/quantize_ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.h"
#include "kernels/fp16.h"

namespace restkv::kernels {
namespace {

// The element of largest magnitude, sign kept (the first one on ties).
float SignedAbsMax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  return max;
}

// Round half to even, as ggml's nearest_int.
int NearestInt(float v) { return static_cast<int>(std::nearbyint(v)); }

// Packs 32 5-bit values: low nibbles as Q4_0, 5th bits into the 32-bit qh.
void Pack5Bit(const int* q, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int i = 0; i < 16; ++i) {
    qs[i] = static_cast<uint8_t>((q[i] & 0x0f) | ((q[i + 16] & 0x0f) << 4));
    qh |= static_cast<uint32_t>((q[i] >> 4) & 1) << i;
    qh |= static_cast<uint32_t>((q[i + 16] >> 4) & 1) << (i + 16);
  }
  std::memcpy(qh_bytes, &qh, sizeof(qh));
}

}  // namespace

// Q4_0: the value of largest magnitude maps to -8 (sign kept), so d may be
// negative; q = trunc(x / d + 8.5) clamped to 15.
void QuantizeRowQ4_0(const float* x, BlockQ4_0* y, int64_t n) {
  RESTKV_CHECK_EQ(n % kQK4_0, 0);
  for (int64_t b = 0; b < n / kQK4_0; ++b, x += kQK4_0) {
    const float d = SignedAbsMax(x, kQK4_0) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = FloatToFp16(d);
    for (int i = 0; i < kQK4_0 / 2; ++i) {
      const int q_lo = std::min(15, static_cast<int>(x[i] * id + 8.5f));
      const int q_hi = std::min(15, static_cast<int>(x[i + kQK4_0 / 2] * id + 8.5f));
      y[b].qs[i] = static_cast<uint8_t>(q_lo | (q_hi << 4));
    }
  }
}

// Q4_1: [min, max] split into 15 steps; q = trunc((x - min) / d + 0.5).
void QuantizeRowQ4_1(const float* x, BlockQ4_1* y, int64_t n) {
  RESTKV_CHECK_EQ(n % kQK4_1, 0);
  for (int64_t b = 0; b < n / kQK4_1; ++b, x += kQK4_1) {
    const float min = *std::min_element(x, x + kQK4_1);
    const float max = *std::max_element(x, x + kQK4_1);
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = FloatToFp16(d);
    y[b].m = FloatToFp16(min);
    for (int i = 0; i < kQK4_1 / 2; ++i) {
      const int q_lo = std::min(15, static_cast<int>((x[i] - min) * id + 0.5f));
      const int q_hi = std::min(15, static_cast<int>((x[i + kQK4_1 / 2] - min) * id + 0.5f));
      y[b].qs[i] = static_cast<uint8_t>(q_lo | (q_hi << 4));
    }
  }
}

// Q5_0: as Q4_0 with 32 levels: the largest magnitude maps to -16.
void QuantizeRowQ5_0(const float* x, BlockQ5_0* y, int64_t n) {
  RESTKV_CHECK_EQ(n % kQK5_0, 0);
  for (int64_t b = 0; b < n / kQK5_0; ++b, x += kQK5_0) {
    const float d = SignedAbsMax(x, kQK5_0) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = FloatToFp16(d);
    int q[kQK5_0];
    for (int i = 0; i < kQK5_0; ++i) q[i] = std::min(31, static_cast<int>(x[i] * id + 16.5f));
    Pack5Bit(q, y[b].qs, y[b].qh);
  }
}

// Q5_1: as Q4_1 with 31 steps.
void QuantizeRowQ5_1(const float* x, BlockQ5_1* y, int64_t n) {
  RESTKV_CHECK_EQ(n % kQK5_1, 0);
  for (int64_t b = 0; b < n / kQK5_1; ++b, x += kQK5_1) {
    const float min = *std::min_element(x, x + kQK5_1);
    const float max = *std::max_element(x, x + kQK5_1);
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = FloatToFp16(d);
    y[b].m = FloatToFp16(min);
    int q[kQK5_1];
    for (int i = 0; i < kQK5_1; ++i)
      q[i] = std::min(31, static_cast<int>((x[i] - min) * id + 0.5f));
    Pack5Bit(q, y[b].qs, y[b].qh);
  }
}

// Q8_0: d = max|x| / 127; q = round(x / d), halves away from zero.
void QuantizeRowQ8_0(const float* x, BlockQ8_0* y, int64_t n) {
  RESTKV_CHECK_EQ(n % kQK8_0, 0);
  for (int64_t b = 0; b < n / kQK8_0; ++b, x += kQK8_0) {
    float amax = 0.0f;
    for (int i = 0; i < kQK8_0; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = FloatToFp16(d);
    for (int i = 0; i < kQK8_0; ++i) y[b].qs[i] = static_cast<int8_t>(std::round(x[i] * id));
  }
}

// Q4_K: 8 sub-blocks of 32, each x ~ sc * d * q - mn * dmin with q < 16 and
// 6-bit sc, mn. Each sub-block's range [min(0, lo), hi] gives a scale and a
// min; those are rounded to 6 bits against the block's largest, and then the
// quants are computed with the rounded values (so errors do not compound).
void QuantizeRowQ4_K(const float* x, BlockQ4_K* y, int64_t n) {
  RESTKV_CHECK_EQ(n % kQK_K, 0);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    // Per sub-block scale and (non-negative) min.
    float scale[8], min[8], max_scale = 0.0f, max_min = 0.0f;
    for (int s = 0; s < 8; ++s) {
      const float lo = std::min(0.0f, *std::min_element(x + 32 * s, x + 32 * s + 32));
      const float hi = *std::max_element(x + 32 * s, x + 32 * s + 32);
      scale[s] = (hi - lo) / 15.0f;
      min[s] = -lo;
      max_scale = std::max(max_scale, scale[s]);
      max_min = std::max(max_min, min[s]);
    }
    // 6-bit scales and mins relative to the block's d and dmin.
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    int ls[8], lm[8];
    for (int s = 0; s < 8; ++s) {
      ls[s] = std::min(63, NearestInt(inv_scale * scale[s]));
      lm[s] = std::min(63, NearestInt(inv_min * min[s]));
    }
    // Pack them (layout in dequantize.cc, ScaleMinK4).
    std::memset(y[b].scales, 0, sizeof(y[b].scales));
    for (int s = 0; s < 8; ++s) {
      if (s < 4) {
        y[b].scales[s] = static_cast<uint8_t>(ls[s]);
        y[b].scales[s + 4] = static_cast<uint8_t>(lm[s]);
      } else {
        y[b].scales[s + 4] = static_cast<uint8_t>((ls[s] & 0x0f) | ((lm[s] & 0x0f) << 4));
        y[b].scales[s - 4] |= static_cast<uint8_t>((ls[s] >> 4) << 6);
        y[b].scales[s] |= static_cast<uint8_t>((lm[s] >> 4) << 6);
      }
    }
    y[b].d = FloatToFp16(max_scale / 63.0f);
    y[b].dmin = FloatToFp16(max_min / 63.0f);
    // Quants against the scales as stored.
    const float d = Fp16ToFloat(y[b].d), dmin = Fp16ToFloat(y[b].dmin);
    std::memset(y[b].qs, 0, sizeof(y[b].qs));
    for (int i = 0; i < kQK_K; ++i) {
      const int s = i / 32;
      const float dl = d * static_cast<float>(ls[s]);
      const float ml = dmin * static_cast<float>(lm[s]);
      const int q = dl != 0.0f ? std::clamp(NearestInt((x[i] + ml) / dl), 0, 15) : 0;
      // Element i = 64*c + 32*hi + l lives in nibble hi of qs[32*c + l].
      const int c = i / 64, hi = s % 2, l = i % 32;
      y[b].qs[32 * c + l] |= static_cast<uint8_t>(q << (4 * hi));
    }
  }
}

// Q6_K: 16 sub-blocks of 16, x ~ d * sc * (q - 32) with q < 64 and int8 sc.
// Each sub-block's largest magnitude maps to -32 (sign kept, as Q4_0), and
// the sub-block scales are rounded to int8 against the largest (-> -128).
void QuantizeRowQ6_K(const float* x, BlockQ6_K* y, int64_t n) {
  RESTKV_CHECK_EQ(n % kQK_K, 0);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    // Per sub-block signed scale, and the one of largest magnitude.
    float scale[16], max_scale = 0.0f;
    for (int s = 0; s < 16; ++s) {
      scale[s] = SignedAbsMax(x + 16 * s, 16) / -32.0f;
      if (std::fabs(scale[s]) > std::fabs(max_scale)) max_scale = scale[s];
    }
    // int8 scales relative to d.
    const float iscale = max_scale != 0.0f ? -128.0f / max_scale : 0.0f;
    y[b].d = FloatToFp16(iscale != 0.0f ? 1.0f / iscale : 0.0f);
    for (int s = 0; s < 16; ++s)
      y[b].scales[s] = static_cast<int8_t>(std::min(127, NearestInt(iscale * scale[s])));
    // Quants against the scales as stored, biased by 32.
    const float d = Fp16ToFloat(y[b].d);
    std::memset(y[b].ql, 0, sizeof(y[b].ql));
    std::memset(y[b].qh, 0, sizeof(y[b].qh));
    for (int i = 0; i < kQK_K; ++i) {
      const float dl = d * static_cast<float>(y[b].scales[i / 16]);
      const int q = dl != 0.0f ? std::clamp(NearestInt(x[i] / dl), -32, 31) + 32 : 32;
      // Element i = 128*h + 32*g + l: low nibble into ql, high 2 bits into qh.
      const int h = i / 128, g = (i % 128) / 32, l = i % 32;
      y[b].ql[64 * h + 32 * (g % 2) + l] |= static_cast<uint8_t>((q & 0x0f) << (4 * (g / 2)));
      y[b].qh[32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * g));
    }
  }
}

bool HasReferenceQuantizer(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_0:
    case GgmlType::kQ5_1:
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_K:
    case GgmlType::kQ6_K:
      return true;
    default:
      return false;
  }
}

void QuantizeRow(GgmlType type, const float* x, void* dst, int64_t n) {
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16:
      FloatToFp16Row(x, static_cast<uint16_t*>(dst), n);
      return;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = FloatToBf16(x[i]);
      return;
    case GgmlType::kQ4_0:
      return QuantizeRowQ4_0(x, static_cast<BlockQ4_0*>(dst), n);
    case GgmlType::kQ4_1:
      return QuantizeRowQ4_1(x, static_cast<BlockQ4_1*>(dst), n);
    case GgmlType::kQ5_0:
      return QuantizeRowQ5_0(x, static_cast<BlockQ5_0*>(dst), n);
    case GgmlType::kQ5_1:
      return QuantizeRowQ5_1(x, static_cast<BlockQ5_1*>(dst), n);
    case GgmlType::kQ8_0:
      return QuantizeRowQ8_0(x, static_cast<BlockQ8_0*>(dst), n);
    case GgmlType::kQ4_K:
      return QuantizeRowQ4_K(x, static_cast<BlockQ4_K*>(dst), n);
    case GgmlType::kQ6_K:
      return QuantizeRowQ6_K(x, static_cast<BlockQ6_K*>(dst), n);
    default:
      RESTKV_CHECK(false) << "no reference quantiser for type id " << static_cast<uint32_t>(type);
  }
}

std::string QuantizeMatrix(GgmlType type, const float* x, int64_t rows, int64_t cols) {
  RESTKV_CHECK(HasReferenceQuantizer(type)) << "type id " << static_cast<uint32_t>(type);
  const int64_t row_bytes = RowBytes(type, cols);
  // std::string storage (heap or in-object) is at least 8-aligned, enough for
  // the block structs QuantizeRow writes through.
  std::string out(static_cast<size_t>(rows * row_bytes), '\0');
  for (int64_t r = 0; r < rows; ++r)
    QuantizeRow(type, x + r * cols, out.data() + r * row_bytes, cols);
  return out;
}

}  // namespace restkv::kernels
