#include "engine/kv_cache_manager.h"

namespace restkv::engine {

KvCacheManager::KvCacheManager(BlockPool& pool, int32_t num_layers)
    : pool_(pool), num_layers_(num_layers) {}

int32_t KvCacheManager::PagesHeld(scheduler::RequestId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? 0 : it->second->num_pages();
}

int32_t KvCacheManager::PrefillPeakPagesFor(int32_t num_tokens) const {
  const int32_t bs = pool_.shape().block_size;
  return num_layers_ * ((num_tokens + bs - 1) / bs);
}

int32_t KvCacheManager::PrefillPeakPages(scheduler::RequestId, int32_t num_tokens) const {
  return PrefillPeakPagesFor(num_tokens);
}

int32_t KvCacheManager::DecodePages(scheduler::RequestId id, int32_t num_tokens) const {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return PrefillPeakPagesFor(num_tokens);
  return it->second->PagesNeeded(num_tokens);
}

bool KvCacheManager::AllocatePrefill(scheduler::RequestId id, int32_t num_tokens,
                                     int32_t layer_begin, int32_t layer_end) {
  return Get(id).ReserveLayers(layer_begin, layer_end, num_tokens);
}

bool KvCacheManager::AllocateDecode(scheduler::RequestId id, int32_t num_tokens) {
  return Get(id).Reserve(num_tokens);
}

void KvCacheManager::Free(scheduler::RequestId id) { seqs_.erase(id); }

SequenceKv& KvCacheManager::Get(scheduler::RequestId id) {
  auto& slot = seqs_[id];
  if (!slot) slot = std::make_unique<SequenceKv>(pool_, num_layers_);
  return *slot;
}

}  // namespace restkv::engine
