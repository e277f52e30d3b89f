// Test-only: random K-quant (Q4_K, Q5_K, Q6_K) matrices in GGUF layout. Every
// byte is random except the fp16 scales, which are set to small finite values
// (random bits would often be inf or NaN), so every quant, 6-bit scale and min
// pattern occurs.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <string>

#include "kernels/fp16.h"
#include "kernels/ggml_type.h"

namespace restkv::kernels::testing {

inline std::string RandomKQuantMatrix(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string bytes(static_cast<size_t>(RowBytes(type, cols) * rows), '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
  std::normal_distribution<float> scale(0.0f, 0.01f);
  const int64_t block = GetGgmlTypeTraits(type)->type_size;
  // Offsets of the fp16 fields: d (and dmin) first in Q4_K / Q5_K, d last in Q6_K.
  const bool q6 = type == GgmlType::kQ6_K;
  for (size_t at = 0; at < bytes.size(); at += static_cast<size_t>(block)) {
    for (int f = 0; f < (q6 ? 1 : 2); ++f) {
      const Half h = FloatToFp16(scale(rng));
      std::memcpy(&bytes[at + (q6 ? 208 : 2 * f)], &h, sizeof(h));
    }
  }
  return bytes;
}

}  // namespace restkv::kernels::testing
