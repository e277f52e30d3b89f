// KvLayerHook: the KV cache side of one sequence's layers during a forward
// step — the LayerHook (engine/model/layer_hook.h) the engine, the eval
// runner and the tools hand to LlamaModel::Forward.
//
//   BeforeLayer(l, n): copy a cached prefix held read-only into layer l's
//                      own pages (SequenceKv::CopyPrefixIntoLayer), then
//                      reserve pages so layer l can take n more slots
//   AfterLayer(l, n):  count the n slots as filled; once the layer holds the
//                      whole prompt, stage copies of its full blocks for the
//                      prefix cache (set_stager) and, with an eviction policy
//                      (a whole prompt prefilled from position 0), run it on
//                      layer l and release the emptied pages before layer l+1
//
// Thread safety: none (the caller's thread). The referenced objects must
// outlive the hook.
#pragma once

#include <atomic>
#include <cstdint>

#include "engine/eviction/policy_config.h"
#include "engine/kv/layer_evictor.h"
#include "engine/kv/prefix_stager.h"
#include "engine/kv/sequence_kv.h"
#include "engine/model/layer_hook.h"

namespace restkv::engine {

class KvLayerHook final : public LayerHook {
 public:
  // Reserve and commit only: no eviction.
  explicit KvLayerHook(SequenceKv& kv) : kv_(kv) {}
  // Evicts with `policy` after each layer when EvictsPrompt(policy, n) holds
  // for the step's n tokens; `report` (may be null) accumulates what it did.
  KvLayerHook(SequenceKv& kv, const KvPolicyConfig& policy, LayerEvictor& evictor,
              EvictionReport* report)
      : kv_(kv), policy_(&policy), evictor_(&evictor), report_(report) {}

  // Makes BeforeLayer fail with Cancelled once `*cancelled` is set (by
  // another thread), so a long prefill stops at the next layer boundary.
  void set_cancel_flag(const std::atomic<bool>* cancelled) { cancelled_ = cancelled; }

  // The step's new tokens are rows [token_begin, token_begin + n) of a
  // prompt of `num_prompt_tokens` prefilled from position 0, one chunk of a
  // layer (scheduler.h, PrefillSlice): eviction, if the policy evicts this
  // prompt, runs after the chunk that ends the layer, over the whole
  // prompt's K/V, scoring with that chunk's last queries.
  // REQUIRES: the policy does not need every query (NeedsH2oScores), and the
  // last chunk holds its scoring window.
  void set_prompt_chunk(int32_t token_begin, int32_t num_prompt_tokens) {
    chunk_begin_ = token_begin;
    chunk_prompt_tokens_ = num_prompt_tokens;
  }

  // Stages each layer's full blocks into `stager` (may be null) as the layer
  // completes the prompt, before any eviction compacts it.
  void set_stager(PrefixStager* stager) { stager_ = stager; }

  [[nodiscard]] int32_t NumQueryRows(int32_t num_new_tokens) const override;
  // Errors: Cancelled when the cancel flag is set; Internal when the pool
  // cannot supply the pages (the scheduler's reservation should have
  // guaranteed them); FailedPrecondition when an evicting step is not a whole
  // prompt from position 0.
  absl::Status BeforeLayer(int32_t layer, int32_t num_new_tokens) override;
  // AfterLayer errors: those of LayerEvictor::EvictLayer (the backend's
  // eviction kernels failed; the layer's pages are unspecified).
  absl::Status AfterLayer(int32_t layer, int32_t num_new_tokens, const float* queries) override;

 private:
  [[nodiscard]] bool Evicts(int32_t num_new_tokens) const;
  // Whether the step's rows end the layer's prompt (a whole prompt, or the
  // chunk that ends it).
  [[nodiscard]] bool EndsLayer(int32_t num_new_tokens) const {
    return chunk_prompt_tokens_ == 0 || chunk_begin_ + num_new_tokens == chunk_prompt_tokens_;
  }
  // The prompt the step's rows belong to: the chunk's prompt, or the rows.
  [[nodiscard]] int32_t PromptTokens(int32_t num_new_tokens) const {
    return chunk_prompt_tokens_ > 0 ? chunk_prompt_tokens_ : num_new_tokens;
  }

  SequenceKv& kv_;
  const KvPolicyConfig* policy_ = nullptr;
  LayerEvictor* evictor_ = nullptr;
  EvictionReport* report_ = nullptr;
  const std::atomic<bool>* cancelled_ = nullptr;
  PrefixStager* stager_ = nullptr;
  int32_t chunk_begin_ = 0;
  int32_t chunk_prompt_tokens_ = 0;  // 0: not a chunk
};

}  // namespace restkv::engine
