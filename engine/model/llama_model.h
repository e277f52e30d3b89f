// LlamaModel: the decoder forward pass over a batch of sequences on a Backend.
//
// One Forward() call is one engine step: each sequence contributes some new
// tokens (a whole prompt, a prompt chunk, or one decode token); their K/V are
// written into the sequence's pages layer by layer and attention reads each
// sequence's pages only. Sequences never see each other, so a sequence gets
// the same result alone or in a batch (up to float reassociation in kernels
// that tile over the batch; see the batch-invariance tests).
//
// Legend as in kernels/backend.h. Thread safety: one caller thread; the model
// owns reusable activation buffers.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/model/layer_hook.h"
#include "engine/model/model_config.h"
#include "engine/model/model_weights.h"
#include "kernels/backend.h"

namespace restkv::engine {

enum class LogitsMode { kNone, kLast, kAll };

// One sequence's share of a step.
//
//   layer l's pages:  [ slot 0 .. cached_len[l]-1 | new tokens | free slots ]
//
// Prefill may run a slice of layers [layer_begin, layer_end) per step; the
// hidden states between slices live in `hidden` ([n][D], backend memory):
// read from it when layer_begin > 0, written to it when layer_end < L.
// Logits are produced only by a step that reaches layer L.
//
// REQUIRES: pages[l] covers cached_len[l] + tokens.size() slots for every
// layer l in the range.
struct SequenceInput {
  absl::Span<const int32_t> tokens;             // [n] new tokens
  int32_t first_position = 0;                   // RoPE position of tokens[0]
  absl::Span<const int32_t> cached_len;         // [L] slots already filled per layer
  absl::Span<const std::vector<float*>> pages;  // [L] block table as page pointers
  LogitsMode logits = LogitsMode::kLast;
  int32_t layer_begin = 0;
  int32_t layer_end = -1;   // -1 = L
  float* hidden = nullptr;  // [n][D]; needed for partial ranges
  // The caller's KV bookkeeping around each layer (reserve, commit, evict);
  // null when the caller reserved and will commit the pages itself.
  LayerHook* hook = nullptr;
  // Per-head lengths after head-wise eviction (SequenceKv::head_len and
  // padding_end): empty, or [L] with head_len[l] empty where every head holds
  // cached_len[l] slots; otherwise KV head h's slots [head_len[l][h],
  // padding_end[l]) are padding that attention skips.
  absl::Span<const std::vector<int32_t>> head_len;
  absl::Span<const int32_t> padding_end;
};

class LlamaModel {
 public:
  // `weights` and `backend` must outlive the model. KV pages hold
  // `block_size` slots of K/V stored as `kv_dtype` (kernels/kv_dtype.h).
  // REQUIRES: backend.SupportsKvDtype(kv_dtype).
  LlamaModel(const ModelConfig& config, const ModelWeights& weights, kernels::Backend& backend,
             int32_t block_size, kernels::KvDtype kv_dtype = kernels::KvDtype::kF32);

  [[nodiscard]] const ModelConfig& config() const { return config_; }
  [[nodiscard]] int32_t block_size() const { return block_size_; }
  [[nodiscard]] kernels::KvDtype kv_dtype() const { return kv_layout_.dtype; }
  // The layout of the KV pages this model writes and reads.
  [[nodiscard]] const kernels::KvPageLayout& kv_layout() const { return kv_layout_; }
  // Block-sparse attention for prompts prefilled whole from position 0 (the
  // backend may compute them dense); unset = dense.
  void set_sparse_prefill(const kernels::SparsePrefill& sparse) { sparse_ = sparse; }
  [[nodiscard]] const std::optional<kernels::SparsePrefill>& sparse_prefill() const {
    return sparse_;
  }

  // Runs the step. All sequences of one call share the same layer range.
  // On success `logits` holds, in input order, one [V] row per sequence with
  // kLast and one per token for kAll (host memory), for calls that end at
  // layer L; it is empty otherwise.
  // Errors: InvalidArgument for token ids out of range or an empty batch;
  // ResourceExhausted if activation buffers cannot grow.
  absl::Status Forward(absl::Span<const SequenceInput> batch, std::vector<float>* logits);

 private:
  struct Step;  // one Forward call's packed rows (llama_model.cc)

  absl::Status EnsureWorkspace(int64_t num_tokens, int64_t num_logit_rows);
  // Packs the batch's tokens, positions and logit rows; checks the inputs.
  absl::StatusOr<Step> PackBatch(absl::Span<const SequenceInput> batch) const;
  // x <- embeddings (first layer) or the sequences' saved hidden states.
  void LoadResidual(absl::Span<const SequenceInput> batch, const Step& step);
  // One layer over every row: hooks before, attention and FFN per chunk,
  // hooks after.
  absl::Status RunLayer(int32_t layer, absl::Span<const SequenceInput> batch, Step& step);
  // backend_.status() as an InternalError naming the backend, or OK.
  absl::Status BackendStatus() const;
  // Rows [c0, c0 + n): the attention block (K/V stored into the pages) and
  // the feed-forward block, both added to the residual stream.
  void RunChunk(const LayerWeights& lw, int32_t layer, absl::Span<const SequenceInput> batch,
                Step& step, int64_t c0, int64_t n);
  // The [V] logits of the step's logit rows, to host memory.
  void ComputeLogits(const Step& step, std::vector<float>* logits);

  const ModelConfig config_;
  std::optional<kernels::SparsePrefill> sparse_;
  const ModelWeights& weights_;
  kernels::Backend& backend_;
  const int32_t block_size_;
  const kernels::KvPageLayout kv_layout_;
  kernels::RopeParams rope_;

  // Per-token activations are computed in chunks of at most this many rows.
  static constexpr int64_t kMaxChunkTokens = 512;

  int64_t capacity_x_tokens_ = 0;  // rows of x_
  int64_t capacity_tokens_ = 0;    // rows of the chunk buffers
  int64_t capacity_logit_rows_ = 0;
  std::unique_ptr<kernels::Buffer> x_;  // [T][D] residual stream of the whole step
  std::unique_ptr<kernels::Buffer> xb_, q_, k_, v_, att_, gate_, up_;  // [chunk][...]
  std::unique_ptr<kernels::Buffer> logit_in_, logits_;                 // [R][D], [R][V]
};

}  // namespace restkv::engine
