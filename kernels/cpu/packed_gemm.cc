#include "kernels/cpu/packed_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/check.h"
#include "kernels/cpu/packed_kquant.h"
#include "kernels/cpu/panel_prefetch.h"
#include "kernels/fp16.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define RESTKV_HAVE_PACKED_GEMM 1
// GCC 12's AVX-512 headers build some intrinsics from _mm512_undefined_*(),
// which its flow analysis reports as maybe-uninitialised (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace restkv::kernels::cpu {
namespace {

constexpr int kP = PackedWeights::kPanelRows;
// Activation rows per tile: 8 int32 + 8 float accumulators + 8 unpacked
// weight vectors fit the 32 zmm registers.
constexpr int kMaxTile = 8;

using packed_detail::BlockPanelBytes;
using packed_detail::BlockQuantBytes;

int64_t PanelBlockBytes(GgmlType type) {
  return packed_detail::IsKQuant(type) ? packed_detail::KPanelBlockBytes(type)
                                       : BlockPanelBytes(type);
}

// Packs rows [0, rows_left) (at most 16) of a panel, all blocks.
void PackPanel(GgmlType type, const uint8_t* src, int64_t row_bytes, int64_t rows_left, int64_t nb,
               int64_t block_bytes, uint8_t* dst) {
  std::memset(dst, 0, static_cast<size_t>(nb * block_bytes));
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* q = dst + b * block_bytes;
    auto* d = reinterpret_cast<float*>(q + BlockQuantBytes(type));
    float* m = d + kP;
    for (int64_t j = 0; j < rows_left; ++j) {
      const uint8_t* row = src + j * row_bytes;
      switch (type) {
        case GgmlType::kQ4_0: {
          const BlockQ4_0& blk = reinterpret_cast<const BlockQ4_0*>(row)[b];
          for (int v = 0; v < 4; ++v) std::memcpy(q + v * 64 + 4 * j, blk.qs + 4 * v, 4);
          d[j] = Fp16ToFloat(blk.d);
          break;
        }
        case GgmlType::kQ4_1: {
          const BlockQ4_1& blk = reinterpret_cast<const BlockQ4_1*>(row)[b];
          for (int v = 0; v < 4; ++v) std::memcpy(q + v * 64 + 4 * j, blk.qs + 4 * v, 4);
          d[j] = Fp16ToFloat(blk.d);
          m[j] = Fp16ToFloat(blk.m);
          break;
        }
        case GgmlType::kQ8_0: {
          const BlockQ8_0& blk = reinterpret_cast<const BlockQ8_0*>(row)[b];
          for (int v = 0; v < 8; ++v) {
            for (int i = 0; i < 4; ++i) {
              q[v * 64 + 4 * j + i] = static_cast<uint8_t>(blk.qs[4 * v + i] + 128);
            }
          }
          d[j] = Fp16ToFloat(blk.d);
          break;
        }
        default:
          RESTKV_CHECK(false) << "no packed layout for type " << static_cast<int>(type);
      }
    }
  }
}

#if RESTKV_HAVE_PACKED_GEMM
inline __m512i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// One panel (16 weight rows) against activation rows [row0, row0 + R):
// y[r * ldy + j] for the rows j set in `store_mask`.
template <GgmlType T, int R>
void PanelTile(const uint8_t* panel, int64_t nb, int64_t block_bytes, const Q8Activations& x,
               int64_t row0, float* y, int64_t ldy, __mmask16 store_mask) {
  __m512 acc[R];
  const Q8PanelBlock* xb[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm512_setzero_ps();
    xb[r] = x.panel_blocks(row0 + r);
  }
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* pb = panel + b * block_bytes;
    packed_detail::PrefetchPanelAhead<BlockPanelBytes(T)>(pb);
    // Each dot starts from −(zero point)·Σx where the weights have one.
    __m512i isum[R];
    for (int r = 0; r < R; ++r) {
      isum[r] = _mm512_set1_epi32(ZeroPointOffset<T>(xb[r][b]));
    }
    if constexpr (T == GgmlType::kQ8_0) {
      for (int v = 0; v < 8; ++v) {
        const __m512i w = _mm512_load_si512(pb + v * 64);
        for (int r = 0; r < R; ++r) {
          isum[r] = _mm512_dpbusd_epi32(isum[r], w, Broadcast4(xb[r][b].qs + 4 * v));
        }
      }
    } else {
      for (int v = 0; v < 4; ++v) {
        const __m512i raw = _mm512_load_si512(pb + v * 64);
        const __m512i lo = _mm512_and_si512(raw, nibble);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble);
        for (int r = 0; r < R; ++r) {
          isum[r] = _mm512_dpbusd_epi32(isum[r], lo, Broadcast4(xb[r][b].qs + 4 * v));
          isum[r] = _mm512_dpbusd_epi32(isum[r], hi, Broadcast4(xb[r][b].qs + 16 + 4 * v));
        }
      }
    }
    const auto* scales = reinterpret_cast<const float*>(pb + BlockQuantBytes(T));
    const __m512 d = _mm512_load_ps(scales);
    for (int r = 0; r < R; ++r) {
      const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[r]), _mm512_set1_ps(xb[r][b].d));
      acc[r] = _mm512_fmadd_ps(t, d, acc[r]);
      if constexpr (T == GgmlType::kQ4_1) {
        acc[r] = _mm512_fmadd_ps(_mm512_load_ps(scales + kP), _mm512_set1_ps(xb[r][b].s), acc[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(y + r * ldy, store_mask, acc[r]);
}

using TileFn = void (*)(const uint8_t*, int64_t, int64_t, const Q8Activations&, int64_t, float*,
                        int64_t, __mmask16);

template <GgmlType T>
constexpr TileFn kTiles[kMaxTile] = {PanelTile<T, 1>, PanelTile<T, 2>, PanelTile<T, 3>,
                                     PanelTile<T, 4>, PanelTile<T, 5>, PanelTile<T, 6>,
                                     PanelTile<T, 7>, PanelTile<T, 8>};

const TileFn* TilesFor(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_0:
      return kTiles<GgmlType::kQ4_0>;
    case GgmlType::kQ4_1:
      return kTiles<GgmlType::kQ4_1>;
    case GgmlType::kQ8_0:
      return kTiles<GgmlType::kQ8_0>;
    default:
      return nullptr;
  }
}
#endif  // RESTKV_HAVE_PACKED_GEMM

void FreeAligned(uint8_t* p) { std::free(p); }

}  // namespace

bool HasPackedGemm(GgmlType type, KernelIsa isa) {
  if (!KernelIsaAvailable(isa)) return false;
  if (packed_detail::IsKQuant(type)) return packed_detail::KKernelsFor(type, isa).tile != nullptr;
  if (isa != KernelIsa::kAvx512Vnni) return packed_detail::BlockTileFor(type, isa) != nullptr;
#if RESTKV_HAVE_PACKED_GEMM
  return isa == KernelIsa::kAvx512Vnni &&
         (type == GgmlType::kQ4_0 || type == GgmlType::kQ4_1 || type == GgmlType::kQ8_0);
#else
  return false;
#endif
}

PackedWeights::PackedWeights(GgmlType type, int64_t rows, int64_t cols, KernelIsa isa)
    : type_(type),
      isa_(isa),
      rows_(rows),
      cols_(cols),
      num_blocks_(cols / GetGgmlTypeTraits(type)->block_size),
      num_panels_((rows + kP - 1) / kP),
      block_bytes_(PanelBlockBytes(type)),
      data_(nullptr, FreeAligned) {}

std::unique_ptr<PackedWeights> PackedWeights::Pack(GgmlType type, int64_t rows, int64_t cols,
                                                   const void* gguf, ThreadPool& pool,
                                                   KernelIsa isa) {
  RESTKV_CHECK(HasPackedGemm(type, isa)) << static_cast<int>(type);
  RESTKV_CHECK_EQ(cols % GetGgmlTypeTraits(type)->block_size, 0);
  std::unique_ptr<PackedWeights> w(new PackedWeights(type, rows, cols, isa));
  const int64_t panel_bytes = w->num_blocks_ * w->block_bytes_;
  w->bytes_ = static_cast<size_t>(w->num_panels_ * panel_bytes);
  w->data_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, std::max<size_t>(w->bytes_, 64))));
  RESTKV_CHECK(w->data_ != nullptr) << "cannot allocate " << w->bytes_ << " bytes";
  const int64_t row_bytes = RowBytes(type, cols);
  const auto* src = static_cast<const uint8_t*>(gguf);
  uint8_t* dst = w->data_.get();
  const bool kquant = packed_detail::IsKQuant(type);
  pool.ParallelFor(w->num_panels_, [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t rows_left = std::min<int64_t>(kP, rows - p * kP);
      if (kquant) {
        packed_detail::PackKPanel(type, src + p * kP * row_bytes, row_bytes, rows_left,
                                  w->num_blocks_, dst + p * panel_bytes);
      } else {
        PackPanel(type, src + p * kP * row_bytes, row_bytes, rows_left, w->num_blocks_,
                  w->block_bytes_, dst + p * panel_bytes);
      }
    }
  });
  return w;
}

namespace {

// Activation rows per pass over a thread's panels: as many as keep their
// Q8PanelBlocks within kChunkBytes, so that they stay in the core's L2
// while every panel of the thread's share runs over them (each panel is
// then re-read once per chunk, from L2 or L3). Without chunks each panel
// pass streamed all m rows from L3: at m = 512 that was P × 2·cols bytes per
// thread for P panels, 128 MB for one 2048 × 2048 matrix. The prefetchers
// hid most of that stream: chunks measured 0–6 % faster (bench_matmul).
int64_t RowChunk(int64_t m, int64_t cols) {
  constexpr int64_t kChunkBytes = int64_t{1} << 20;
  const int64_t row_bytes = cols / kQK8_1 * static_cast<int64_t>(sizeof(Q8PanelBlock));
  return std::min(m, std::max<int64_t>(kMaxTile, kChunkBytes / row_bytes / kMaxTile * kMaxTile));
}

}  // namespace

void PackedWeights::MatMul(const Q8Activations& x, int64_t m, float* y, ThreadPool& pool) const {
  RESTKV_CHECK_EQ(x.num_blocks() * kQK8_1, cols_);
  const int64_t panel_bytes = num_blocks_ * block_bytes_;
  const int64_t chunk = RowChunk(m, cols_);
  if (packed_detail::IsKQuant(type_) || isa_ != KernelIsa::kAvx512Vnni) {
    packed_detail::KKernels k;
    if (packed_detail::IsKQuant(type_)) {
      k = packed_detail::KKernelsFor(type_, isa_);
    } else {
      k.tile = packed_detail::BlockTileFor(type_, isa_);
    }
    // K-quant chunks of kUnpackRows or more run over the panel unpacked once
    // per chunk (packed_kquant.h); fewer rows do not repay the unpacking.
    constexpr int64_t kUnpackRows = 2 * kMaxTile;
    const bool unpack = k.unpack != nullptr && chunk >= kUnpackRows;
    pool.ParallelFor(num_panels_, [&](int64_t p0, int64_t p1, int) {
      std::unique_ptr<uint8_t[], void (*)(uint8_t*)> unpacked(nullptr, FreeAligned);
      if (unpack) {
        unpacked.reset(static_cast<uint8_t*>(std::aligned_alloc(
            64, static_cast<size_t>(num_blocks_ * packed_detail::kKUnpackedBlockBytes))));
        RESTKV_CHECK(unpacked != nullptr);
      }
      for (int64_t c0 = 0; c0 < m; c0 += chunk) {
        const int64_t c1 = std::min(m, c0 + chunk);
        for (int64_t p = p0; p < p1; ++p) {
          const uint8_t* panel = data_.get() + p * panel_bytes;
          const int valid = static_cast<int>(std::min<int64_t>(kP, rows_ - p * kP));
          if (unpack) k.unpack(panel, num_blocks_, unpacked.get());
          for (int64_t t0 = c0; t0 < c1; t0 += kMaxTile) {
            const int num_x = static_cast<int>(std::min<int64_t>(kMaxTile, c1 - t0));
            float* out = y + t0 * rows_ + p * kP;
            if (unpack) {
              k.unpacked_tile(unpacked.get(), num_blocks_, x, t0, num_x, out, rows_, valid);
            } else {
              k.tile(panel, num_blocks_, x, t0, num_x, out, rows_, valid);
            }
          }
        }
      }
    });
    return;
  }
#if RESTKV_HAVE_PACKED_GEMM
  const TileFn* tiles = TilesFor(type_);
  pool.ParallelFor(num_panels_, [&](int64_t p0, int64_t p1, int) {
    for (int64_t c0 = 0; c0 < m; c0 += chunk) {
      const int64_t c1 = std::min(m, c0 + chunk);
      for (int64_t p = p0; p < p1; ++p) {
        const uint8_t* panel = data_.get() + p * panel_bytes;
        const int64_t valid = std::min<int64_t>(kP, rows_ - p * kP);
        const auto mask = static_cast<__mmask16>((1u << valid) - 1);
        for (int64_t t0 = c0; t0 < c1; t0 += kMaxTile) {
          const int tile = static_cast<int>(std::min<int64_t>(kMaxTile, c1 - t0));
          tiles[tile - 1](panel, num_blocks_, block_bytes_, x, t0, y + t0 * rows_ + p * kP, rows_,
                          mask);
        }
      }
    }
  });
#else
  RESTKV_CHECK(false) << "packed GEMM is not compiled in";
#endif
}

}  // namespace restkv::kernels::cpu
