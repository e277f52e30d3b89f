// LayerHook: the caller's part of each layer of one sequence during
// LlamaModel::Forward.
//
// The forward pass only computes. What happens to the KV cache around a
// layer — pages reserved before the layer writes its K/V, the new slots
// counted after it, eviction during prefill — belongs to whoever owns the
// sequence's cache (engine/kv/kv_layer_hook.h is the engine's). Forward calls,
// for every layer l of the step and every sequence with a hook:
//
//   BeforeLayer(l, n)      then the layer runs: K/V stored, attention, FFN
//   AfterLayer(l, n, q)    q = the captured post-RoPE queries of layer l
//
// Forward reads the sequence's block table (SequenceInput::pages) after
// BeforeLayer, so BeforeLayer may grow it.
//
// Thread safety: called on Forward's thread, one call at a time.
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace restkv::engine {

class LayerHook {
 public:
  virtual ~LayerHook() = default;

  // How many of the sequence's last new tokens AfterLayer wants the queries
  // of (0: none; num_new_tokens: all). Asked once per Forward call.
  [[nodiscard]] virtual int32_t NumQueryRows(int32_t num_new_tokens) const = 0;

  // Before layer `layer` runs with `num_new_tokens` new tokens. On OK the
  // layer's block table covers cached_len[layer] + num_new_tokens slots.
  // An error fails the whole Forward call.
  virtual absl::Status BeforeLayer(int32_t layer, int32_t num_new_tokens) = 0;

  // After layer `layer` stored the new tokens' K/V. `queries`
  // [NumQueryRows][H][d] (host memory, post-RoPE) are the last rows' queries;
  // null when NumQueryRows is 0. An error fails the whole Forward call.
  virtual absl::Status AfterLayer(int32_t layer, int32_t num_new_tokens, const float* queries) = 0;
};

}  // namespace restkv::engine
