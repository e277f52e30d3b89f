#include "engine/model/model_config.h"

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "engine/gguf/gguf_file.h"

namespace restkv::engine {

absl::StatusOr<ModelConfig> ModelConfig::FromGguf(const GgufFile& file) {
  ModelConfig c;
  RESTKV_ASSIGN_OR_RETURN(c.architecture, file.GetString("general.architecture"));
  if (c.architecture != "llama" && c.architecture != "qwen2") {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: unsupported architecture '%s' (supported: llama, qwen2)", file.name(),
                        c.architecture));
  }
  RESTKV_ASSIGN_OR_RETURN(c.name, file.GetStringOr("general.name", c.architecture));
  const std::string a = c.architecture + ".";
  auto get_int = [&](const std::string& key) -> absl::StatusOr<int32_t> {
    RESTKV_ASSIGN_OR_RETURN(int64_t v, file.GetInt(a + key));
    if (v <= 0 || v > (int64_t{1} << 30)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: %s%s = %d is out of range", file.name(), a, key, v));
    }
    return static_cast<int32_t>(v);
  };
  RESTKV_ASSIGN_OR_RETURN(c.num_layers, get_int("block_count"));
  RESTKV_ASSIGN_OR_RETURN(c.hidden_size, get_int("embedding_length"));
  RESTKV_ASSIGN_OR_RETURN(c.num_heads, get_int("attention.head_count"));
  RESTKV_ASSIGN_OR_RETURN(int64_t kv_heads,
                          file.GetIntOr(a + "attention.head_count_kv", c.num_heads));
  c.num_kv_heads = static_cast<int32_t>(kv_heads);
  RESTKV_ASSIGN_OR_RETURN(c.ffn_size, get_int("feed_forward_length"));
  RESTKV_ASSIGN_OR_RETURN(c.context_length, get_int("context_length"));
  RESTKV_ASSIGN_OR_RETURN(double eps,
                          file.GetFloatOr(a + "attention.layer_norm_rms_epsilon", 1e-5));
  c.rms_eps = static_cast<float>(eps);
  RESTKV_ASSIGN_OR_RETURN(double theta, file.GetFloatOr(a + "rope.freq_base", 10000.0));
  c.rope_theta = static_cast<float>(theta);
  if (c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: head_count %d is not a multiple of head_count_kv %d", file.name(),
                        c.num_heads, c.num_kv_heads));
  }
  if (c.hidden_size % c.num_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: embedding_length %d is not a multiple of head_count %d", file.name(),
                        c.hidden_size, c.num_heads));
  }
  RESTKV_ASSIGN_OR_RETURN(int64_t key_len,
                          file.GetIntOr(a + "attention.key_length", c.hidden_size / c.num_heads));
  c.head_dim = static_cast<int32_t>(key_len);
  RESTKV_ASSIGN_OR_RETURN(int64_t rope_dims, file.GetIntOr(a + "rope.dimension_count", c.head_dim));
  c.rope_dims = static_cast<int32_t>(rope_dims);
  if (c.rope_dims <= 0 || c.rope_dims > c.head_dim || c.rope_dims % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: rope.dimension_count %d does not fit head size %d", file.name(),
                        c.rope_dims, c.head_dim));
  }
  RESTKV_ASSIGN_OR_RETURN(c.rope_scaling_type, file.GetStringOr(a + "rope.scaling.type", ""));
  if (c.rope_scaling_type == "linear") {
    RESTKV_ASSIGN_OR_RETURN(double factor, file.GetFloatOr(a + "rope.scaling.factor", 1.0));
    if (factor <= 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: rope.scaling.factor %f <= 0", file.name(), factor));
    }
    c.rope_position_scale = static_cast<float>(1.0 / factor);
  } else if (!c.rope_scaling_type.empty() && c.rope_scaling_type != "none") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: RoPE scaling type '%s' is not supported (supported: none, linear, Llama 3 rope_freqs)",
        file.name(), c.rope_scaling_type));
  }
  c.rope_style = c.architecture == "qwen2" ? kernels::RopeStyle::kNeox : kernels::RopeStyle::kNorm;
  c.has_qkv_bias = file.FindTensor("blk.0.attn_q.bias") != nullptr;
  c.tied_embeddings = file.FindTensor("output.weight") == nullptr;
  c.has_rope_freq_factors = file.FindTensor("rope_freqs.weight") != nullptr;
  const GgufTensorInfo* embd = file.FindTensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2 || embd->dims[0] != c.hidden_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: token_embd.weight missing or not [%d, vocab]", file.name(), c.hidden_size));
  }
  c.vocab_size = static_cast<int32_t>(embd->dims[1]);
  return c;
}

int64_t ModelConfig::ParameterCount() const {
  const int64_t d = hidden_size;
  const int64_t per_layer = d * q_dim() + 2 * d * kv_dim() + q_dim() * d + 3 * d * ffn_size + 2 * d;
  return per_layer * num_layers + vocab_size * d * (tied_embeddings ? 1 : 2) + d;
}

}  // namespace restkv::engine
