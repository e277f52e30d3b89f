// Reference quantisers (f32 -> GGML blocks), round-to-nearest. Used to build
// synthetic models, to repack weights, and as test oracles.
//
// Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 use ggml's reference formulas, so their
// bytes equal ggml's quantize_row_*_ref (and the `gguf` Python package's;
// checked by quantize_ref_test.cc). Q4_K and Q6_K are simpler than ggml's
// (one pass, no error-minimising search for the sub-block scales): valid
// blocks that llama.cpp reads, but not the bytes llama-quantize would write.
//
// Q8_1 is not here: kernels::cpu::QuantizeRowQ8_1 (quant_dot.h) is the one
// for activations; a second overload in this namespace would make unqualified
// calls in kernels::cpu ambiguous through argument-dependent lookup.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/ggml_type.h"

namespace restkv::kernels {

// y[n / 32] = the blocks of x[n]. REQUIRES for all five: n % 32 == 0.
void QuantizeRowQ4_0(const float* x, BlockQ4_0* y, int64_t n);
void QuantizeRowQ4_1(const float* x, BlockQ4_1* y, int64_t n);
void QuantizeRowQ5_0(const float* x, BlockQ5_0* y, int64_t n);
void QuantizeRowQ5_1(const float* x, BlockQ5_1* y, int64_t n);
void QuantizeRowQ8_0(const float* x, BlockQ8_0* y, int64_t n);
// y[n / 256] = the blocks of x[n]. REQUIRES: n % 256 == 0.
void QuantizeRowQ4_K(const float* x, BlockQ4_K* y, int64_t n);
void QuantizeRowQ6_K(const float* x, BlockQ6_K* y, int64_t n);

// Whether QuantizeRow / QuantizeMatrix accept `type`: F32, F16, BF16, Q4_0,
// Q4_1, Q5_0, Q5_1, Q8_0, Q4_K and Q6_K.
bool HasReferenceQuantizer(GgmlType type);

// dst (RowBytes(type, n) bytes) = x[n] stored as `type`.
// REQUIRES: HasReferenceQuantizer(type), n % block_size == 0.
void QuantizeRow(GgmlType type, const float* x, void* dst, int64_t n);

// The bytes of a row-major [rows, cols] matrix stored as `type` (rows of
// RowBytes(type, cols) bytes back to back; in GGUF dims order {cols, rows}).
// REQUIRES: HasReferenceQuantizer(type), cols % block_size == 0.
std::string QuantizeMatrix(GgmlType type, const float* x, int64_t rows, int64_t cols);

}  // namespace restkv::kernels
