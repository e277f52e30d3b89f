// PackedWeights: Q4_0 / Q4_1 / Q8_0 and K-quant (Q4_K / Q5_K / Q6_K) weight
// matrices repacked at load into panels of 16 output rows for AVX-512 VNNI
// and AVX2 (packed_gemm_avx2.cc, packed_kquant_*.cc), and the matmul over them.
//
// Why: the row-major GGUF layout makes every 32-element block a separate
// horizontal dot (unpack, dpbusd on 8 lanes, convert, scale, and finally a
// horizontal sum), about five instructions per 32 multiply-adds. In a panel,
// one 64-byte vector holds 4 consecutive elements of 16 rows, so a single
// `vpdpbusd` with a broadcast of 4 activation bytes advances 16 outputs by 4
// products each (64 MACs), the block's scale is applied once per 16 outputs,
// and no horizontal sum is ever needed. The GEMM reuses each unpacked weight
// vector for up to 8 activation rows.
//
// Panel layout, per 32-element block b (16 rows; rows past the matrix end are
// zero with zero scales):
//   Q4_0 / Q4_1: 4 vectors of 64 bytes; byte 4j+i of vector v is byte 4v+i of
//                row j's `qs`, i.e. element 4v+i in its low nibble and element
//                16+4v+i in its high nibble (the GGUF nibble order, kept).
//   Q8_0:        8 vectors; byte 4j+i of vector v is row j's element 4v+i plus
//                128 (so it is unsigned, as vpdpbusd's first operand must be).
//   then 16 floats: the rows' scales d; Q4_1 adds 16 floats: the minimums m.
// K-quants keep their own widths per 256-element super-block (quants, byte
// scales, fp16 d / dmin), about the file's bytes: see packed_kquant.h.
// Integer sums are exact; signed weights are corrected with the activation
// block's exact integer sum (Σ(q-8)x = Σqx - 8Σx, Σ(q+128)x - 128Σx = Σqx).
//
// Each output (weight row, activation row) is computed by the same sequence
// of operations whatever the number of activation rows in the call or the
// tile it falls in, so results are batch invariant.
#pragma once

#include <cstdint>
#include <memory>

#include "common/thread_pool.h"
#include "kernels/cpu/kernel_isa.h"
#include "kernels/cpu/quant_dot.h"
#include "kernels/ggml_type.h"

namespace restkv::kernels::cpu {

// Whether this build and CPU have panel kernels for `type` on the path `isa`
// (every panel type on both).
// Without them the caller uses DotTile on the GGUF layout (K-quants:
// repacked to Q8_0).
bool HasPackedGemm(GgmlType type, KernelIsa isa);

class PackedWeights {
 public:
  static constexpr int kPanelRows = 16;

  // Repacks `rows` x `cols` weights in GGUF layout for the kernels of `isa`.
  // REQUIRES: HasPackedGemm(type, isa), cols a multiple of the type's block.
  static std::unique_ptr<PackedWeights> Pack(GgmlType type, int64_t rows, int64_t cols,
                                             const void* gguf, ThreadPool& pool, KernelIsa isa);

  // y[r][o] = Σ_k w[o][k] · x[r][k] for r < m over the quantised activations
  // `x` (rows [0, m), quantised from m x cols floats). y is m x rows.
  void MatMul(const Q8Activations& x, int64_t m, float* y, ThreadPool& pool) const;

  [[nodiscard]] GgmlType type() const { return type_; }
  [[nodiscard]] KernelIsa isa() const { return isa_; }
  [[nodiscard]] int64_t rows() const { return rows_; }
  [[nodiscard]] int64_t cols() const { return cols_; }
  [[nodiscard]] size_t size_bytes() const { return bytes_; }

 private:
  PackedWeights(GgmlType type, int64_t rows, int64_t cols, KernelIsa isa);

  GgmlType type_;
  KernelIsa isa_;
  // num_blocks_: blocks per row (32 elements; K-quants: 256).
  int64_t rows_, cols_, num_blocks_, num_panels_;
  int64_t block_bytes_;  // bytes of one block of one panel
  size_t bytes_ = 0;
  std::unique_ptr<uint8_t[], void (*)(uint8_t*)> data_;
};

}  // namespace restkv::kernels::cpu
