// AVX2 tiles of the Q4_0 / Q4_1 / Q8_0 panels (layout in packed_gemm.h), for
// CPUs without AVX-512 and for RESTKV_CPU_ISA=avx2: each 64-byte panel vector
// is read as two 32-byte halves (rows 0..7, 8..15), one pass per half, so
// that 4 activation rows' accumulators stay in the 16 ymm registers.
// Q8_0 panels hold weights + 128 (unsigned, for vpdpbusd). Without VNNI
// those would saturate pmaddubsw's int16 pairs (2·255·127), so the tile
// takes the signed weight back (xor 0x80) and multiplies its magnitude by
// the activations with its sign (psignb): |w|·(±x) = w·x, a pair at most
// 2·128·127, exact.
#include "kernels/cpu/packed_kquant.h"

// Built twice: as itself, and by packed_gemm_avxvnni.cc (RESTKV_AVX2_TILES_VNNI,
// -mavxvnni) as BlockTileAvxVnni, which exists only where vpdpbusd does.
#if RESTKV_AVX2_TILES_VNNI
#define RESTKV_BLOCK_TILE_FN BlockTileAvxVnni
#else
#define RESTKV_BLOCK_TILE_FN BlockTileAvx2
#endif

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && \
    (!RESTKV_AVX2_TILES_VNNI || RESTKV_VNNI_256)
#include "kernels/cpu/avx2_tile.h"
#include "kernels/cpu/dot_sum.h"
#include "kernels/cpu/panel_prefetch.h"
#define RESTKV_HAVE_PANEL_AVX2 1
#endif

namespace restkv::kernels::cpu::packed_detail {

#if RESTKV_HAVE_PANEL_AVX2
namespace {

using avx2::Broadcast4;
using avx2::Load;

constexpr int kP = 16;

template <GgmlType T, int R>
void HalfTile(const uint8_t* panel, int64_t nb, const Q8Activations& x, int64_t row0, float* y,
              int64_t ldy, int h, int valid) {
  __m256 acc[R];
  const Q8PanelBlock* xb[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    xb[r] = x.panel_blocks(row0 + r);
  }
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; ++b) {
    PrefetchPanelAhead<BlockPanelBytes(T)>(panel + b * BlockPanelBytes(T));
    const uint8_t* pb = panel + b * BlockPanelBytes(T) + 32 * h;
    // Q8_0 adds weights + 128 with VNNI, |w| against ±x without (kSigned).
    constexpr bool kSigned = T == GgmlType::kQ8_0 && !avx2::DotOps::kDirectDot;
    // Each dot starts from −(zero point)·Σx where the weights have one.
    using Sum = DotSum<avx2::DotOps, T != GgmlType::kQ8_0 ? 15 : kSigned ? 128 : 255>;
    Sum isum[R];
    // (The signed Q8_0 dot undoes the + 128 itself.)
    if constexpr (!kSigned) {
      for (int r = 0; r < R; ++r) isum[r] = Sum(_mm256_set1_epi32(ZeroPointOffset<T>(xb[r][b])));
    }
    if constexpr (T == GgmlType::kQ8_0) {
#pragma GCC unroll 8
      for (int v = 0; v < 8; ++v) {
        const __m256i w = Load(pb + v * 64);
        if constexpr (kSigned) {
          const __m256i ws = _mm256_xor_si256(w, _mm256_set1_epi8(static_cast<char>(0x80)));
          const __m256i mag = _mm256_abs_epi8(ws);
#pragma GCC unroll 4
          for (int r = 0; r < R; ++r) {
            isum[r].Add(mag, _mm256_sign_epi8(Broadcast4(xb[r][b].qs + 4 * v), ws));
          }
        } else {
#pragma GCC unroll 4
          for (int r = 0; r < R; ++r) isum[r].Add(w, Broadcast4(xb[r][b].qs + 4 * v));
        }
      }
    } else {
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) {
        const __m256i raw = Load(pb + v * 64);
        const __m256i lo = _mm256_and_si256(raw, nibble);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nibble);
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          isum[r].Add(lo, Broadcast4(xb[r][b].qs + 4 * v));
          isum[r].Add(hi, Broadcast4(xb[r][b].qs + 16 + 4 * v));
        }
      }
    }
    const auto* scales = reinterpret_cast<const float*>(pb - 32 * h + BlockQuantBytes(T));
    const __m256 d = _mm256_loadu_ps(scales + 8 * h);
    for (int r = 0; r < R; ++r) {
      const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(isum[r].Sum()), _mm256_set1_ps(xb[r][b].d));
      acc[r] = _mm256_fmadd_ps(t, d, acc[r]);
      if constexpr (T == GgmlType::kQ4_1) {
        acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(scales + kP + 8 * h), _mm256_set1_ps(xb[r][b].s),
                                 acc[r]);
      }
    }
  }
  avx2::StoreHalf(acc, y, ldy, h, valid);
}

template <GgmlType T>
void Run(const uint8_t* panel, int64_t nb, const Q8Activations& x, int64_t row0, int num_x,
         float* y, int64_t ldy, int valid) {
  static constexpr avx2::HalfTileFn kTiles[avx2::kMaxRows] = {HalfTile<T, 1>, HalfTile<T, 2>,
                                                              HalfTile<T, 3>, HalfTile<T, 4>};
  avx2::RunHalves(kTiles, panel, nb, x, row0, num_x, y, ldy, valid);
}

}  // namespace

KTileFn RESTKV_BLOCK_TILE_FN(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_0:
      return Run<GgmlType::kQ4_0>;
    case GgmlType::kQ4_1:
      return Run<GgmlType::kQ4_1>;
    case GgmlType::kQ8_0:
      return Run<GgmlType::kQ8_0>;
    default:
      return nullptr;
  }
}
#else
KTileFn RESTKV_BLOCK_TILE_FN(GgmlType) { return nullptr; }
#endif

}  // namespace restkv::kernels::cpu::packed_detail
