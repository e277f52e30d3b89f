// Synthetic Llama-shaped GGUF files with seeded random weights, for tests,
// benchmarks and long-context experiments that need no trained checkpoint.
//
// The file is a complete model: architecture metadata, every tensor, and a
// byte-level BPE tokenizer (256 byte tokens plus a few merges and ChatML
// control tokens), so Model::Load() accepts it like a real one. Its outputs
// are meaningless text; its shapes and memory behaviour are real.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/ggml_type.h"

namespace restkv::engine {

struct SyntheticModelSpec {
  std::string architecture = "llama";  // "llama" | "qwen2"
  int32_t num_layers = 2;
  int32_t hidden_size = 64;
  int32_t num_heads = 4;
  int32_t num_kv_heads = 2;
  int32_t ffn_size = 128;
  int32_t context_length = 4096;
  float rope_theta = 10000.0f;
  kernels::GgmlType weight_type = kernels::GgmlType::kF32;  // F32, F16, Q4_0, Q4_1, Q8_0
  uint32_t seed = 1;
  bool tied_embeddings = true;
};

// Vocabulary size of every synthetic model: 256 bytes + 4 merges + 3 control tokens.
inline constexpr int32_t kSyntheticVocabSize = 263;

// Returns the bytes of a GGUF v3 file. REQUIRES: hidden_size divisible by
// num_heads and by 32 (block size), num_heads divisible by num_kv_heads.
std::string BuildSyntheticGguf(const SyntheticModelSpec& spec);

}  // namespace restkv::engine
