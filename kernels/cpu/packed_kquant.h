// Panel layouts and tile kernels of the K-quants (Q4_K, Q5_K, Q6_K) for
// PackedWeights (packed_gemm.h); an implementation detail of that class.
//
// The K-quants' 256-element super-blocks hold 32-element sub-blocks (Q4_K,
// Q5_K: 6-bit scale and min each) or 16-element groups (Q6_K: int8 scale
// each), so every Q8_1 activation block (32 elements) meets exactly one
// sub-block or two groups: its exact integer dot with the weight quants is
// taken with vpdpbusd as for Q4_0, and the sub-block's scale is applied in
// float per 16 outputs. Weights keep their file precision (no repacking to
// Q8_0) and about the file's bytes: quants are stored at their own width and
// scales as bytes, only reordered into panels of 16 rows.
//
// Layout of one super-block of one panel (16 rows j; rows past the matrix end
// are zero with zero scales), sub-block s = 0..7 covering elements 32s..32s+31:
//   per s: 4 nibble vectors N_u (u = 0..3) of 64 bytes: byte 4j+i holds
//          element 4u+i of the sub-block in its low nibble and 16+4u+i in its
//          high nibble (the Q4_0 panel order);
//     Q5_K then 1 vector H: bit k of byte 4j+i is the 5th bit of element
//          4k+i (k < 4) or 16+4(k-4)+i (k >= 4);
//     Q6_K then 2 vectors H0, H1: bits 2u, 2u+1 of byte 4j+i are the top two
//          bits of element 4u+i (H0) or 16+4u+i (H1);
//   Q4_K / Q5_K: sc[8][16] and mn[8][16] as uint8, d[16] and dmin[16] fp16;
//   Q6_K: sc[16][16] as int8 (group g = 2s + half), d[16] fp16, 32 bytes pad.
// Q4_K and Q5_K weights are d·sc·q − dmin·mn with q unsigned; the kernel
// computes Σ d·sc·q·x − dmin·mn·Σx per sub-block from the integer sums.
// Q6_K weights are d·sc·(q − 32): Σ(q − 32)x = Σqx − 32Σx per 16-group, with
// −32Σx from the activation block (Q8PanelBlock), where each group's dot
// starts.
#pragma once

#include <cstdint>

#include "kernels/cpu/kernel_isa.h"
#include "kernels/cpu/quant_dot.h"
#include "kernels/ggml_type.h"

// 1 where this translation unit's flags give a 256-bit vpdpbusd (AVX-VNNI,
// or AVX-512 VNNI with VL): the AVX2 tiles then take their dots with it
// (avx2_tile.h), and the AVX-VNNI build of them exists (packed_*_avx2.cc).
#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
#define RESTKV_VNNI_256 1
#else
#define RESTKV_VNNI_256 0
#endif

namespace restkv::kernels::cpu::packed_detail {

bool IsKQuant(GgmlType type);

// Bytes of one sub-block's quants in a panel (4 nibble vectors + high bits).
constexpr int64_t KSubBytes(GgmlType type) {
  return type == GgmlType::kQ4_K ? 4 * 64 : type == GgmlType::kQ5_K ? 5 * 64 : 6 * 64;
}
// Offset of the scale area in a panel super-block.
constexpr int64_t KScalesOffset(GgmlType type) { return 8 * KSubBytes(type); }
// Within the scale area (320 bytes for every K type): sc at 0, mn (Q4_K /
// Q5_K), d, dmin (Q4_K / Q5_K; padding for Q6_K).
constexpr int64_t kKMinsOffset = 128;
constexpr int64_t kKDOffset = 256;
constexpr int64_t kKDminOffset = 288;
// Bytes of one super-block of one panel (a multiple of 64).
constexpr int64_t KPanelBlockBytes(GgmlType type) { return KScalesOffset(type) + 320; }

// Packs rows [0, rows_left) (at most 16) of one panel, all `nsb` super-blocks,
// from GGUF rows `row_bytes` apart. dst holds nsb * KPanelBlockBytes bytes.
void PackKPanel(GgmlType type, const uint8_t* src, int64_t row_bytes, int64_t rows_left,
                int64_t nsb, uint8_t* dst);

// y[r * ldy + j] = Σ_k w[j][k] · x[row0 + r][k] for r < num_x (<= 8) and the
// `valid` first rows j of the panel, computed by the ISA path `isa`. The
// scalar reference is DotRowReference (quant_dot.h) on the GGUF rows.
using KTileFn = void (*)(const uint8_t* panel, int64_t nsb, const Q8Activations& x, int64_t row0,
                         int num_x, float* y, int64_t ldy, int valid);

// An unpacked panel: the same super-blocks with every sub-block's quants
// widened to one byte each (8 vectors of 64 bytes per sub-block: the low- and
// high-nibble elements of step u = 0..3 as N_u's lanes order them, high bits
// merged in), then the panel's 320 scale bytes unchanged. A GEMM over many
// activation rows unpacks each panel once per row chunk into a per-thread
// buffer and runs the tiles over that, instead of repeating the unpacking
// (shifts, masks, merges: a fifth of a Q6_K tile's vector operations) for
// every 8 rows. Results are bit-identical to the packed tile's.
constexpr int64_t kKUnpackedSubBytes = 8 * 64;
constexpr int64_t kKUnpackedBlockBytes = 8 * kKUnpackedSubBytes + 320;
using KUnpackFn = void (*)(const uint8_t* panel, int64_t nsb, uint8_t* unpacked);

// The kernels of one K-quant type on one path: the tile over a panel, the
// unpacking, and the tile over an unpacked panel.
struct KKernels {
  KTileFn tile = nullptr;
  KUnpackFn unpack = nullptr;
  KTileFn unpacked_tile = nullptr;
};
// Null members where this build lacks the path.
KKernels KKernelsFor(GgmlType type, KernelIsa isa);
// The per-ISA tables behind KKernelsFor (packed_kquant_avx512.cc, _avx2.cc:
// one tile, kquant_tile.h, over each ISA's vector traits).
KKernels KKernelsAvx512(GgmlType type);
KKernels KKernelsAvx2(GgmlType type);
KKernels KKernelsAvxVnni(GgmlType type);  // the AVX2 tiles with vpdpbusd (_avxvnni.cc)
// Bytes of one 32-element block of one Q4_0 / Q4_1 / Q8_0 panel (layout in
// packed_gemm.h): the quants, then 16 float scales (Q4_1: and 16 minimums).
constexpr int64_t BlockQuantBytes(GgmlType type) {
  return type == GgmlType::kQ8_0 ? 8 * 64 : 4 * 64;
}
constexpr int64_t BlockPanelBytes(GgmlType type) {
  return BlockQuantBytes(type) + 16 * 4 * (type == GgmlType::kQ4_1 ? 2 : 1);
}

// The AVX2 tiles of the Q4_0 / Q4_1 / Q8_0 panels (packed_gemm.h's layout;
// packed_gemm_avx2.cc), same signature with `nsb` the 32-element blocks;
// nullptr where the build lacks them.
KTileFn BlockTileAvx2(GgmlType type);
KTileFn BlockTileAvxVnni(GgmlType type);
// BlockTileAvx2 or BlockTileAvxVnni for `isa`; nullptr for kAvx512Vnni
// (packed_gemm.cc has those tiles).
KTileFn BlockTileFor(GgmlType type, KernelIsa isa);

}  // namespace restkv::kernels::cpu::packed_detail
