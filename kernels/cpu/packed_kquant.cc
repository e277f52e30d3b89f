#include "kernels/cpu/packed_kquant.h"

#include <cstring>

#include "common/check.h"
#include "kernels/cpu/dequantize.h"

namespace restkv::kernels::cpu::packed_detail {
namespace {

// One GGUF super-block decoded to its integer parts.
struct KParts {
  uint8_t q[kQK_K];  // unsigned quants (Q6_K: 0..63, before the −32)
  int8_t sc[16];     // Q4_K / Q5_K: 8 scales; Q6_K: 16 group scales
  uint8_t mn[8];     // Q4_K / Q5_K mins
  Half d = 0, dmin = 0;
};

void Decode(GgmlType type, const uint8_t* row, int64_t sb, KParts& p) {
  switch (type) {
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K: {
      const bool q5 = type == GgmlType::kQ5_K;
      const uint8_t* blk = row + sb * (q5 ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K));
      const auto& b4 = *reinterpret_cast<const BlockQ4_K*>(blk);
      const auto& b5 = *reinterpret_cast<const BlockQ5_K*>(blk);
      const uint8_t* qs = q5 ? b5.qs : b4.qs;
      p.d = b4.d;  // same offsets in both
      p.dmin = b4.dmin;
      for (int s = 0; s < 8; ++s) {
        int sc, mn;
        KScaleMin(s, b4.scales, &sc, &mn);
        p.sc[s] = static_cast<int8_t>(sc);  // 6-bit, fits
        p.mn[s] = static_cast<uint8_t>(mn);
        for (int l = 0; l < 32; ++l) {
          int q = (qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 0x0f;
          if (q5) q += 16 * ((b5.qh[l] >> s) & 1);
          p.q[32 * s + l] = static_cast<uint8_t>(q);
        }
      }
      break;
    }
    case GgmlType::kQ6_K: {
      const auto& b = reinterpret_cast<const BlockQ6_K*>(row)[sb];
      p.d = b.d;
      for (int g = 0; g < 16; ++g) p.sc[g] = b.scales[g];
      for (int i = 0; i < kQK_K; ++i) {
        const int h = i / 128, g = (i % 128) / 32, l = i % 32;
        p.q[i] = static_cast<uint8_t>(((b.ql[64 * h + 32 * (g % 2) + l] >> (4 * (g / 2))) & 0x0f) |
                                      (((b.qh[32 * h + l] >> (2 * g)) & 3) << 4));
      }
      break;
    }
    default:
      RESTKV_CHECK(false) << "not a K-quant: " << static_cast<int>(type);
  }
}

}  // namespace

bool IsKQuant(GgmlType type) {
  return type == GgmlType::kQ4_K || type == GgmlType::kQ5_K || type == GgmlType::kQ6_K;
}

KKernels KKernelsFor(GgmlType type, KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512Vnni:
      return KKernelsAvx512(type);
    case KernelIsa::kAvxVnni:
      return KKernelsAvxVnni(type);
    case KernelIsa::kAvx2:
      return KKernelsAvx2(type);
  }
  return {};
}

KTileFn BlockTileFor(GgmlType type, KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512Vnni:
      return nullptr;
    case KernelIsa::kAvxVnni:
      return BlockTileAvxVnni(type);
    case KernelIsa::kAvx2:
      return BlockTileAvx2(type);
  }
  return nullptr;
}

void PackKPanel(GgmlType type, const uint8_t* src, int64_t row_bytes, int64_t rows_left,
                int64_t nsb, uint8_t* dst) {
  const int64_t block_bytes = KPanelBlockBytes(type), sub = KSubBytes(type);
  std::memset(dst, 0, static_cast<size_t>(nsb * block_bytes));
  KParts p;
  for (int64_t sb = 0; sb < nsb; ++sb) {
    uint8_t* out = dst + sb * block_bytes;
    uint8_t* scales = out + KScalesOffset(type);
    for (int64_t j = 0; j < rows_left; ++j) {
      Decode(type, src + j * row_bytes, sb, p);
      for (int s = 0; s < 8; ++s) {
        const uint8_t* q = p.q + 32 * s;
        uint8_t* v = out + s * sub;
        for (int u = 0; u < 4; ++u) {
          for (int i = 0; i < 4; ++i) {
            const int lo = q[4 * u + i], hi = q[16 + 4 * u + i];
            const int64_t at = 4 * j + i;
            v[u * 64 + at] = static_cast<uint8_t>((lo & 0x0f) | ((hi & 0x0f) << 4));
            if (type == GgmlType::kQ5_K) {
              v[256 + at] |= static_cast<uint8_t>((lo >> 4) << u | (hi >> 4) << (4 + u));
            } else if (type == GgmlType::kQ6_K) {
              v[256 + at] |= static_cast<uint8_t>((lo >> 4) << (2 * u));
              v[320 + at] |= static_cast<uint8_t>((hi >> 4) << (2 * u));
            }
          }
        }
      }
      auto* d = reinterpret_cast<Half*>(scales + kKDOffset);
      d[j] = p.d;
      if (type == GgmlType::kQ6_K) {
        for (int g = 0; g < 16; ++g) scales[g * 16 + j] = static_cast<uint8_t>(p.sc[g]);
      } else {
        for (int s = 0; s < 8; ++s) {
          scales[s * 16 + j] = static_cast<uint8_t>(p.sc[s]);
          scales[kKMinsOffset + s * 16 + j] = p.mn[s];
        }
        reinterpret_cast<Half*>(scales + kKDminOffset)[j] = p.dmin;
      }
    }
  }
}

}  // namespace restkv::kernels::cpu::packed_detail
