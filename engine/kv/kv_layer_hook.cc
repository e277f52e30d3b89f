#include "engine/kv/kv_layer_hook.h"

#include "absl/strings/str_format.h"

namespace restkv::engine {

bool KvLayerHook::Evicts(int32_t num_new_tokens) const {
  // A chunk evicts only when it ends its layer.
  if (!EndsLayer(num_new_tokens)) return false;
  return policy_ != nullptr && EvictsPrompt(*policy_, PromptTokens(num_new_tokens));
}

int32_t KvLayerHook::NumQueryRows(int32_t num_new_tokens) const {
  if (!Evicts(num_new_tokens)) return 0;
  // H2O scores every query; the others only the observation window.
  return NeedsH2oScores(*policy_) ? num_new_tokens
                                  : ScoringWindow(*policy_, PromptTokens(num_new_tokens));
}

absl::Status KvLayerHook::BeforeLayer(int32_t layer, int32_t num_new_tokens) {
  if (cancelled_ != nullptr && cancelled_->load(std::memory_order_relaxed)) {
    return absl::CancelledError(absl::StrFormat("cancelled before layer %d", layer));
  }
  // A cached prefix held read-only: this layer starts from a copy of it.
  if (!kv_.CopyPrefixIntoLayer(layer)) {
    return absl::InternalError(absl::StrFormat(
        "layer %d: no pages to copy the cached prefix into (the scheduler's reservation was "
        "not there)",
        layer));
  }
  if (chunk_prompt_tokens_ > 0 && kv_.cached_len()[layer] != chunk_begin_) {
    return absl::FailedPreconditionError(
        absl::StrFormat("layer %d: a chunk from row %d, but %d slots are cached", layer,
                        chunk_begin_, kv_.cached_len()[layer]));
  }
  if (chunk_prompt_tokens_ == 0 && Evicts(num_new_tokens) && kv_.cached_len()[layer] != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "layer %d: eviction runs on a whole prompt prefilled from position 0, but %d slots "
        "are already cached",
        layer, kv_.cached_len()[layer]));
  }
  if (!kv_.ReserveLayers(layer, layer + 1, num_new_tokens)) {
    return absl::InternalError(absl::StrFormat(
        "layer %d: no pages for %d new slots (the scheduler's reservation was not there)", layer,
        num_new_tokens));
  }
  return absl::OkStatus();
}

absl::Status KvLayerHook::AfterLayer(int32_t layer, int32_t num_new_tokens, const float* queries) {
  kv_.CommitLayers(layer, layer + 1, num_new_tokens);
  if (stager_ != nullptr && EndsLayer(num_new_tokens)) stager_->StageLayer(layer, kv_);
  if (!Evicts(num_new_tokens)) return absl::OkStatus();
  const int32_t prompt = PromptTokens(num_new_tokens);
  const int32_t window = ScoringWindow(*policy_, prompt);
  const bool all = NeedsH2oScores(*policy_);
  if (chunk_prompt_tokens_ > 0 && (all || window > num_new_tokens)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("layer %d: the last chunk has %d rows; the policy scores with %s", layer,
                        num_new_tokens, all ? "every query" : absl::StrFormat("%d", window)));
  }
  // With H2O `queries` holds every row and the window is its tail.
  const int64_t qrow = static_cast<int64_t>(evictor_->config().q_dim());
  const float* q_window =
      queries == nullptr ? nullptr : queries + (all ? (num_new_tokens - window) * qrow : 0);
  return evictor_->EvictLayer(*policy_, layer, prompt, q_window, window, all ? queries : nullptr,
                              kv_, report_);
}

}  // namespace restkv::engine
