#include "kernels/cpu/dequantize.h"

#include <cstring>

#include "common/check.h"
#include "kernels/fp16.h"

// Legend: b = block index in the row, i = element index in the block,
// y = the block's 32 or 256 outputs, d = block scale, m / dmin = block min.
// Every per-element formula keeps ggml's float operation order, so results
// are bit-identical to ggml's dequantize_row_* functions.

namespace restkv::kernels {

// The 6-bit scale and min of sub-block s (of 8) from the 12-byte K-quant
// scale array: s < 4 are the low 6 bits of bytes s and s + 4; s >= 4 take
// their low 4 bits from byte s + 4 and their top 2 bits from the top of
// bytes s - 4 (scale) and s (min).
void KScaleMin(int s, const uint8_t* packed, int* scale, int* min) {
  if (s < 4) {
    *scale = packed[s] & 63;
    *min = packed[s + 4] & 63;
  } else {
    *scale = (packed[s + 4] & 0x0f) | ((packed[s - 4] >> 6) << 4);
    *min = (packed[s + 4] >> 4) | ((packed[s] >> 6) << 4);
  }
}

namespace {

// Q4_0: 32 x 4-bit q; element i is the low nibble of qs[i] (i < 16) or the
// high nibble of qs[i - 16]. y = (q - 8) * d.
void RowQ4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK4_0) {
    const float d = Fp16ToFloat(x[b].d);
    for (int i = 0; i < kQK4_0 / 2; ++i) {
      const int q_lo = x[b].qs[i] & 0x0f;  // element i
      const int q_hi = x[b].qs[i] >> 4;    // element i + 16
      y[i] = static_cast<float>(q_lo - 8) * d;
      y[i + kQK4_0 / 2] = static_cast<float>(q_hi - 8) * d;
    }
  }
}

// Q4_1: nibbles as Q4_0, unsigned. y = q * d + m.
void RowQ4_1(const BlockQ4_1* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK4_1) {
    const float d = Fp16ToFloat(x[b].d);
    const float m = Fp16ToFloat(x[b].m);
    for (int i = 0; i < kQK4_1 / 2; ++i) {
      y[i] = static_cast<float>(x[b].qs[i] & 0x0f) * d + m;
      y[i + kQK4_1 / 2] = static_cast<float>(x[b].qs[i] >> 4) * d + m;
    }
  }
}

// Q5_0: nibbles as Q4_0 plus a 5th bit: bit i of the 32-bit qh is element
// i's. y = (q - 16) * d.
void RowQ5_0(const BlockQ5_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK5_0) {
    const float d = Fp16ToFloat(x[b].d);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, sizeof(qh));
    for (int i = 0; i < kQK5_0 / 2; ++i) {
      const int hi_lo = ((qh >> i) & 1) << 4;         // 5th bit of element i
      const int hi_hi = ((qh >> (i + 16)) & 1) << 4;  // 5th bit of element i + 16
      y[i] = static_cast<float>(((x[b].qs[i] & 0x0f) | hi_lo) - 16) * d;
      y[i + kQK5_0 / 2] = static_cast<float>(((x[b].qs[i] >> 4) | hi_hi) - 16) * d;
    }
  }
}

// Q5_1: as Q5_0, unsigned. y = q * d + m.
void RowQ5_1(const BlockQ5_1* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK5_1) {
    const float d = Fp16ToFloat(x[b].d);
    const float m = Fp16ToFloat(x[b].m);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, sizeof(qh));
    for (int i = 0; i < kQK5_1 / 2; ++i) {
      const int hi_lo = ((qh >> i) & 1) << 4;
      const int hi_hi = ((qh >> (i + 16)) & 1) << 4;
      y[i] = static_cast<float>((x[b].qs[i] & 0x0f) | hi_lo) * d + m;
      y[i + kQK5_1 / 2] = static_cast<float>((x[b].qs[i] >> 4) | hi_hi) * d + m;
    }
  }
}

// Q8_0: 32 x int8. y = q * d.
void RowQ8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK8_0) {
    const float d = Fp16ToFloat(x[b].d);
    for (int i = 0; i < kQK8_0; ++i) y[i] = static_cast<float>(x[b].qs[i]) * d;
  }
}

// K-quant element order for the 2-bit and 6-bit types: element
// i = 128*h + 32*g + l (h: half, g: 2-bit group, l < 32) is the 2 bits at
// shift 2*g of qs[32*h + l]; sub-block (16 elements) s = i / 16.

// Q2_K: 16 sub-blocks, scales[s] = 4-bit scale (low) | 4-bit min (high).
// y = d * sc * q - dmin * mn.
void RowQ2_K(const BlockQ2_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK_K) {
    const float d = Fp16ToFloat(x[b].d);
    const float dmin = Fp16ToFloat(x[b].dmin);
    for (int i = 0; i < kQK_K; ++i) {
      const int h = i / 128, g = (i % 128) / 32, l = i % 32, s = i / 16;
      // Sub-block scale and min.
      const float dl = d * static_cast<float>(x[b].scales[s] & 0x0f);
      const float ml = dmin * static_cast<float>(x[b].scales[s] >> 4);
      // 2-bit quant.
      const int q = (x[b].qs[32 * h + l] >> (2 * g)) & 3;
      y[i] = dl * static_cast<float>(q) - ml;
    }
  }
}

// Q3_K: 2 low bits as Q2_K; the 3rd bit is bit (4*h + g) of hmask[l], and a
// clear bit means "minus 4". 16 signed 6-bit scales (stored + 32) are packed
// in 12 bytes: low nibbles in bytes 0-7 (s < 8: low nibble of byte s,
// s >= 8: high nibble of byte s - 8), high 2 bits in bytes 8-11 (at shift
// 2 * (s / 4) of byte 8 + s % 4). y = d * (sc - 32) * (q - 4 * !hbit).
void RowQ3_K(const BlockQ3_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK_K) {
    const float d = Fp16ToFloat(x[b].d);
    // Unpack the 16 scales.
    const uint8_t* packed = x[b].scales;
    int scales[16];
    for (int s = 0; s < 16; ++s) {
      const int low4 = s < 8 ? (packed[s] & 0x0f) : (packed[s - 8] >> 4);
      const int high2 = (packed[8 + s % 4] >> (2 * (s / 4))) & 3;
      scales[s] = (low4 | (high2 << 4)) - 32;
    }
    for (int i = 0; i < kQK_K; ++i) {
      const int h = i / 128, g = (i % 128) / 32, l = i % 32, s = i / 16;
      const float dl = d * static_cast<float>(scales[s]);
      // 2 low bits, then the high bit from hmask.
      const int q_low = (x[b].qs[32 * h + l] >> (2 * g)) & 3;
      const bool hbit = (x[b].hmask[l] >> (4 * h + g)) & 1;
      y[i] = dl * static_cast<float>(q_low - (hbit ? 0 : 4));
    }
  }
}

// Q4_K: 8 sub-blocks of 32; element i = 64*c + 32*hi + l is nibble `hi` of
// qs[32*c + l], in sub-block s = i / 32. y = d * sc * q - dmin * mn.
void RowQ4_K(const BlockQ4_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK_K) {
    const float d = Fp16ToFloat(x[b].d);
    const float dmin = Fp16ToFloat(x[b].dmin);
    for (int i = 0; i < kQK_K; ++i) {
      const int c = i / 64, hi = (i / 32) % 2, l = i % 32, s = i / 32;
      // Sub-block scale and min.
      int sc, mn;
      KScaleMin(s, x[b].scales, &sc, &mn);
      const float dl = d * static_cast<float>(sc);
      const float ml = dmin * static_cast<float>(mn);
      // 4-bit quant.
      const int q = (x[b].qs[32 * c + l] >> (4 * hi)) & 0x0f;
      y[i] = dl * static_cast<float>(q) - ml;
    }
  }
}

// Q5_K: Q4_K plus a 5th bit: bit s of qh[l] (s = i / 32).
void RowQ5_K(const BlockQ5_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK_K) {
    const float d = Fp16ToFloat(x[b].d);
    const float dmin = Fp16ToFloat(x[b].dmin);
    for (int i = 0; i < kQK_K; ++i) {
      const int c = i / 64, hi = (i / 32) % 2, l = i % 32, s = i / 32;
      int sc, mn;
      KScaleMin(s, x[b].scales, &sc, &mn);
      const float dl = d * static_cast<float>(sc);
      const float ml = dmin * static_cast<float>(mn);
      // 4 low bits, then the 5th.
      const int q_low = (x[b].qs[32 * c + l] >> (4 * hi)) & 0x0f;
      const int q_high = (x[b].qh[l] >> s) & 1;
      y[i] = dl * static_cast<float>(q_low + 16 * q_high) - ml;
    }
  }
}

// Q6_K: element i = 128*h + 32*g + l has its 4 low bits in nibble g / 2 of
// ql[64*h + 32*(g % 2) + l] and its 2 high bits at shift 2*g of
// qh[32*h + l]; 16 int8 scales, one per 16 elements. y = d * sc * (q - 32).
void RowQ6_K(const BlockQ6_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK_K) {
    const float d = Fp16ToFloat(x[b].d);
    for (int i = 0; i < kQK_K; ++i) {
      const int h = i / 128, g = (i % 128) / 32, l = i % 32, s = i / 16;
      const int q_low = (x[b].ql[64 * h + 32 * (g % 2) + l] >> (4 * (g / 2))) & 0x0f;
      const int q_high = (x[b].qh[32 * h + l] >> (2 * g)) & 3;
      const int q = (q_low | (q_high << 4)) - 32;
      y[i] = d * static_cast<float>(x[b].scales[s]) * static_cast<float>(q);
    }
  }
}

}  // namespace

void DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n) {
  const GgmlTypeTraits* t = GetGgmlTypeTraits(type);
  RESTKV_CHECK(t != nullptr && t->supported) << "type id " << static_cast<uint32_t>(type);
  RESTKV_CHECK_EQ(n % t->block_size, 0) << t->name;
  const int64_t nb = n / t->block_size;  // blocks in the row
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Fp16ToFloat(h[i]);
      return;
    }
    case GgmlType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFloat(h[i]);
      return;
    }
    case GgmlType::kQ4_0:
      return RowQ4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
    case GgmlType::kQ4_1:
      return RowQ4_1(static_cast<const BlockQ4_1*>(src), dst, nb);
    case GgmlType::kQ5_0:
      return RowQ5_0(static_cast<const BlockQ5_0*>(src), dst, nb);
    case GgmlType::kQ5_1:
      return RowQ5_1(static_cast<const BlockQ5_1*>(src), dst, nb);
    case GgmlType::kQ8_0:
      return RowQ8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
    case GgmlType::kQ2_K:
      return RowQ2_K(static_cast<const BlockQ2_K*>(src), dst, nb);
    case GgmlType::kQ3_K:
      return RowQ3_K(static_cast<const BlockQ3_K*>(src), dst, nb);
    case GgmlType::kQ4_K:
      return RowQ4_K(static_cast<const BlockQ4_K*>(src), dst, nb);
    case GgmlType::kQ5_K:
      return RowQ5_K(static_cast<const BlockQ5_K*>(src), dst, nb);
    case GgmlType::kQ6_K:
      return RowQ6_K(static_cast<const BlockQ6_K*>(src), dst, nb);
    default:
      RESTKV_CHECK(false) << "no dequantiser for " << t->name;
  }
}

}  // namespace restkv::kernels
