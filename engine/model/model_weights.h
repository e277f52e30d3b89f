// ModelWeights: the decoder's tensors, prepared on a Backend.
//
// Ownership: the GgufFile must outlive the ModelWeights (the CPU backend uses
// quantised tensors in place in the mapping); converted copies are owned by
// the backend. Shapes follow the legend of kernels/backend.h.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model_config.h"
#include "kernels/backend.h"

namespace restkv::engine {

class GgufFile;

struct LayerWeights {
  const float* attn_norm = nullptr;  // [D]
  kernels::Matrix wq;                // [H·d][D]
  kernels::Matrix wk;                // [Hkv·d][D]
  kernels::Matrix wv;                // [Hkv·d][D]
  kernels::Matrix wo;                // [D][H·d]
  const float* bq = nullptr;         // [H·d] (qwen2 only)
  const float* bk = nullptr;         // [Hkv·d]
  const float* bv = nullptr;         // [Hkv·d]
  const float* ffn_norm = nullptr;   // [D]
  kernels::Matrix w_gate;            // [F][D]
  kernels::Matrix w_up;              // [F][D]
  kernels::Matrix w_down;            // [D][F]
};

struct ModelWeights {
  kernels::Matrix token_embd;                // [V][D]
  const float* output_norm = nullptr;        // [D]
  kernels::Matrix output;                    // [V][D] (token_embd when tied)
  const float* rope_freq_factors = nullptr;  // [rope_dims / 2] or null
  std::vector<LayerWeights> layers;          // [L]

  // Errors: InvalidArgument naming the tensor when one is missing or has the
  // wrong shape; Unimplemented for tensor types the backend cannot use.
  static absl::StatusOr<ModelWeights> Load(const GgufFile& file, const ModelConfig& config,
                                           kernels::Backend& backend);
};

}  // namespace restkv::engine
