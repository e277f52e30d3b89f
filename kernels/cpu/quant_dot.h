// Integer dot products between quantised weight rows and Q8_1 activations.
//
// This is the CPU fast path for Q4_0 / Q4_1 / Q8_0 weights (the formats of
// the common small GGUF files): activations are quantised per 32-element
// block to int8 with a scale (Q8_1: d, s = d·Σq), and each weight block's
// contribution is an exact integer dot scaled by d_w·d_x (+ m_w·s_x for
// Q4_1). The block formulas are ggml's, so results track llama.cpp's closely.
//
// NOTE(restkv): we chose integer dots over dequantise-then-BLAS because the
// weights stay 4-5x smaller in cache and memory traffic (decode is bandwidth
// bound) and int8 multiply-accumulate (VNNI / maddubs) does 4x the work per
// instruction of fp32 FMA. Types without a kernel here are repacked to Q8_0 at
// load (see CpuBackend::PrepareMatrix).
//
// Each output is computed by the same sequence of operations whatever the
// tile it falls in, so a row's result does not depend on the batch around it.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/ggml_type.h"

namespace restkv::kernels::cpu {

// Whether DotTile supports weights of `type`.
bool HasQuantDot(GgmlType type);

// y[n / 32] = Q8_1 blocks of x[n]. REQUIRES: n % 32 == 0.
void QuantizeRowQ8_1(const float* x, BlockQ8_1* y, int64_t n);

// One activation block as the panel tiles (packed_gemm.h) read it: the
// quants and every per-block term some tile needs, in one cache line. A tile
// then keeps one pointer per activation row; with one per row into each of
// four arrays, the AVX-512 tiles' 8 rows ran out of general registers and
// spilled in their inner loop. The offsets are the weights' zero points times
// Σq, negated: a tile starts its integer dot from the one of its type, so
// the zero point costs no instruction.
struct alignas(64) Q8PanelBlock {
  int8_t qs[32];
  float d;                 // the block's scale
  float s;                 // Q8_1's d·Σq, widened (Q4_1's min term)
  float sum;               // Σq, exact (Q4_K / Q5_K min terms)
  int32_t q4_0_offset;     // −8Σq (Q4_0: weights q − 8)
  int32_t q8_0_offset;     // −128Σq (Q8_0 panels: weights + 128, unsigned)
  int32_t q6_k_offset[2];  // −32Σq of elements 0..15 and 16..31 (Q6_K groups)
  int32_t pad;
};
static_assert(sizeof(Q8PanelBlock) == 64);

// What a panel tile's integer dot of block x against weights of type T
// starts from: −(zero point)·Σq for the types stored with one (Q4_0: q − 8;
// Q8_0 panels: + 128), else 0.
template <GgmlType T>
constexpr int32_t ZeroPointOffset(const Q8PanelBlock& x) {
  if constexpr (T == GgmlType::kQ4_0) return x.q4_0_offset;
  if constexpr (T == GgmlType::kQ8_0) return x.q8_0_offset;
  return 0;
}

// Activations of a matmul: rows of Q8_1 blocks, and the same blocks as
// Q8PanelBlocks, whose scales are widened to float once (the kernels would
// otherwise convert them per weight row). The panel tiles and DotTile read
// the panel blocks; the Q8_1 rows are for the scalar reference.
class Q8Activations {
 public:
  // Quantises x [m][n]. REQUIRES: n % 32 == 0.
  void Quantize(const float* x, int64_t m, int64_t n);
  // The same, for rows [r0, r1) only, after Resize(m, n) (lets callers split
  // the work over threads).
  void Resize(int64_t m, int64_t n);
  void QuantizeRows(const float* x, int64_t r0, int64_t r1);

  [[nodiscard]] int64_t num_blocks() const { return nb_; }
  [[nodiscard]] const BlockQ8_1* blocks(int64_t row) const { return q_.data() + row * nb_; }
  [[nodiscard]] const Q8PanelBlock* panel_blocks(int64_t row) const {
    return panel_.data() + row * nb_;
  }

 private:
  int64_t nb_ = 0, n_ = 0;
  std::vector<BlockQ8_1> q_;
  std::vector<Q8PanelBlock> panel_;
};

// out[w * num_x + r] = dot(weight row w, activation row x_rows[r]) for
// w < num_w (weight rows at w0 + w * row_bytes) and r < num_x.
// REQUIRES: HasQuantDot(type), 1 <= num_w <= 2, 1 <= num_x <= 4.
void DotTile(GgmlType type, const uint8_t* w0, int64_t row_bytes, int num_w, const Q8Activations& x,
             const int64_t* x_rows, int num_x, float* out);

// Plain scalar dot of one weight row and one activation row: the test oracle.
// Also for Q4_K, Q5_K and Q6_K (which DotTile does not take), in the packed
// kernels' arithmetic: an exact integer sum per 32-element sub-block (16 for
// Q6_K) scaled in float.
float DotRowReference(GgmlType type, const void* w, const BlockQ8_1* x, int64_t num_blocks);

}  // namespace restkv::kernels::cpu
