#include "engine/kv/kv_cache_manager.h"

namespace restkv::engine {

KvCacheManager::KvCacheManager(BlockPool& pool, int32_t num_layers)
    : pool_(pool), num_layers_(num_layers), math_{num_layers, pool.shape().block_size} {}

void KvCacheManager::SetPolicy(scheduler::RequestId id, const KvPolicyConfig& policy) {
  policies_[id] = policy;
}

int32_t KvCacheManager::PagesHeld(scheduler::RequestId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? 0 : it->second->num_pages();
}

int32_t KvCacheManager::PrefillPeakPages(scheduler::RequestId id, int32_t num_tokens) const {
  auto it = policies_.find(id);
  const KvPolicyConfig policy = it == policies_.end() ? KvPolicyConfig{} : it->second;
  return static_cast<int32_t>(math_.PrefillPeakPages(policy, num_tokens));
}

int32_t KvCacheManager::DecodePages(scheduler::RequestId id, int32_t num_tokens) const {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return static_cast<int32_t>(math_.PrefillPeakPages({}, num_tokens));
  return it->second->PagesNeeded(num_tokens);
}

bool KvCacheManager::CoversPrefill(scheduler::RequestId id, int32_t num_tokens,
                                   int32_t /*layer_begin*/, int32_t /*layer_end*/) const {
  // The promise is the whole remaining peak, whatever the slice: after the
  // slice the request still holds its pages and the next slice continues.
  return PrefillPeakPages(id, num_tokens) - PagesHeld(id) <= pool_.num_free();
}

bool KvCacheManager::AllocateDecode(scheduler::RequestId id, int32_t num_tokens) {
  return Get(id).Reserve(num_tokens);
}

void KvCacheManager::Release(scheduler::RequestId id) { seqs_.erase(id); }

void KvCacheManager::Free(scheduler::RequestId id) {
  seqs_.erase(id);
  policies_.erase(id);
}

SequenceKv& KvCacheManager::Get(scheduler::RequestId id) {
  auto& slot = seqs_[id];
  if (!slot) slot = std::make_unique<SequenceKv>(pool_, num_layers_);
  return *slot;
}

}  // namespace restkv::engine
