// PackedWeights: Q4_0 / Q4_1 / Q8_0 weight matrices repacked at load into
// panels of 16 output rows for AVX-512 VNNI, and the matmul over them.
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
#include "kernels/cpu/quant_dot.h"
#include "kernels/ggml_type.h"

namespace restkv::kernels::cpu {

// Whether this build has the panel kernels (AVX-512 BW + VNNI) and they
// support `type`. Without them the caller uses DotTile on the GGUF layout.
bool HasPackedGemm(GgmlType type);

class PackedWeights {
 public:
  static constexpr int kPanelRows = 16;

  // Repacks `rows` x `cols` weights in GGUF layout. REQUIRES: HasPackedGemm(type),
  // cols % 32 == 0.
  static std::unique_ptr<PackedWeights> Pack(GgmlType type, int64_t rows, int64_t cols,
                                             const void* gguf, ThreadPool& pool);

  // y[r][o] = Σ_k w[o][k] · x[r][k] for r < m over the quantised activations
  // `x` (rows [0, m), quantised from m x cols floats). y is m x rows.
  void MatMul(const Q8Activations& x, int64_t m, float* y, ThreadPool& pool) const;

  [[nodiscard]] GgmlType type() const { return type_; }
  [[nodiscard]] int64_t rows() const { return rows_; }
  [[nodiscard]] int64_t cols() const { return cols_; }
  [[nodiscard]] size_t size_bytes() const { return bytes_; }

 private:
  PackedWeights(GgmlType type, int64_t rows, int64_t cols);

  GgmlType type_;
  int64_t rows_, cols_, num_blocks_, num_panels_;
  int64_t block_bytes_;  // bytes of one block of one panel
  size_t bytes_ = 0;
  std::unique_ptr<uint8_t[], void (*)(uint8_t*)> data_;
};

}  // namespace restkv::kernels::cpu
