// Dequantisation of GGML tensor rows to float32: the scalar reference for
// every type GetGgmlTypeTraits() marks supported (F32, F16, BF16, Q4_0, Q4_1,
// Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K).
//
// Block layouts are in kernels/ggml_type.h. The formulas, including the order
// of float operations, are ggml's, so values equal llama.cpp's bit for bit
// (checked against the `gguf` Python package by dequantize_test.cc). Plain
// loops with a comment per step; this is the oracle, not the fast path.
// Thread safety: pure functions.
#pragma once

#include <cstdint>

#include "kernels/ggml_type.h"

namespace restkv::kernels {

// dst[0, n) = the n values stored in src (n / block_size blocks).
// REQUIRES: GetGgmlTypeTraits(type)->supported, n % block_size == 0, src
// holds RowBytes(type, n) bytes aligned to 2 (4 for F32).
void DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n);

// The 6-bit scale and min of sub-block s (0..7) of a Q4_K / Q5_K block from
// its 12-byte `scales` array (ggml's packing).
void KScaleMin(int s, const uint8_t* packed, int* scale, int* min);

}  // namespace restkv::kernels
