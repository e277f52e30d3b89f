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
#pragma once

#include <cstdint>

#include "kernels/ggml_type.h"

namespace restkv::kernels::cpu {

// Whether DotRows supports weights of `type`.
bool HasQuantDot(GgmlType type);

// y[n / 32] = Q8_1 blocks of x[n]. REQUIRES: n % 32 == 0.
void QuantizeRowQ8_1(const float* x, BlockQ8_1* y, int64_t n);

// out[r] = dot(weight row w, x row r) for r < num_x, each x row being
// num_blocks Q8_1 blocks. REQUIRES: HasQuantDot(type), 1 <= num_x <= 4.
void DotRows(GgmlType type, const void* w, const BlockQ8_1* const* x, int num_x,
             int64_t num_blocks, float* out);

// Plain scalar version of DotRows for one x row: the test oracle.
float DotRowReference(GgmlType type, const void* w, const BlockQ8_1* x, int64_t num_blocks);

}  // namespace restkv::kernels::cpu
