// ModelConfig: the shape and hyper-parameters of a Llama-family decoder,
// read from GGUF metadata (`<arch>.*` keys).
//
// Supported architectures: "llama" (SmolLM2, Llama 2/3, Mistral) and "qwen2"
// (adds Q/K/V biases, NeoX-style RoPE). Anything else is InvalidArgument.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace restkv::engine {

class GgufFile;

struct ModelConfig {
  std::string architecture;  // "llama" | "qwen2"
  std::string name;          // general.name, for display
  int32_t num_layers = 0;    // L
  int32_t hidden_size = 0;   // D
  int32_t num_heads = 0;     // H
  int32_t num_kv_heads = 0;  // Hkv
  int32_t head_dim = 0;      // d
  int32_t ffn_size = 0;      // F
  int32_t vocab_size = 0;    // V
  int32_t context_length = 0;
  float rms_eps = 1e-5f;
  kernels::RopeStyle rope_style = kernels::RopeStyle::kNorm;
  int32_t rope_dims = 0;
  float rope_theta = 10000.0f;
  float rope_position_scale = 1.0f;  // 1 / linear scaling factor
  std::string rope_scaling_type;     // "", "none", "linear" (yarn is refused)
  bool has_qkv_bias = false;
  bool tied_embeddings = false;        // no output.weight: reuse token_embd
  bool has_rope_freq_factors = false;  // rope_freqs.weight present (Llama 3.1+)

  // Errors: InvalidArgument naming the key for missing or inconsistent
  // metadata, unsupported architectures and RoPE scaling types.
  static absl::StatusOr<ModelConfig> FromGguf(const GgufFile& file);

  [[nodiscard]] int32_t q_dim() const { return num_heads * head_dim; }
  [[nodiscard]] int32_t kv_dim() const { return num_kv_heads * head_dim; }
  // Parameters in the weight matrices (for display).
  [[nodiscard]] int64_t ParameterCount() const;
};

}  // namespace restkv::engine
