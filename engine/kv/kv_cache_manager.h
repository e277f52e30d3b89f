// KvCacheManager: the per-request KV caches (SequenceKv) over one BlockPool,
// answering the scheduler's page questions (scheduler::KvAllocator).
//
// Page arithmetic (kv_page_math.h, policy-aware) is the single source of
// truth for admission: the scheduler admits a request only when free pages,
// less those promised to prefills already admitted, cover its prefill peak.
// Prefill pages are then taken layer by layer inside the forward pass (and
// released by eviction before the next layer), so CoversPrefill only
// confirms the promise; decode pages are taken eagerly.
//
// Thread safety: none (engine thread).
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "engine/eviction/policy_config.h"
#include "engine/kv/block_pool.h"
#include "engine/kv/page_math.h"
#include "engine/kv/sequence_kv.h"
#include "scheduler/kv_allocator.h"

namespace restkv::engine {

class KvCacheManager final : public scheduler::KvAllocator {
 public:
  KvCacheManager(BlockPool& pool, int32_t num_layers);

  // KvAllocator:
  int32_t NumFreePages() const override { return pool_.num_free(); }
  int32_t PagesHeld(scheduler::RequestId id) const override;
  int32_t PrefillPeakPages(scheduler::RequestId id, int32_t num_tokens) const override;
  int32_t DecodePages(scheduler::RequestId id, int32_t num_tokens) const override;
  bool CoversPrefill(scheduler::RequestId id, int32_t num_tokens, int32_t layer_begin,
                     int32_t layer_end) const override;
  bool AllocateDecode(scheduler::RequestId id, int32_t num_tokens) override;
  void Release(scheduler::RequestId id) override;
  void Free(scheduler::RequestId id) override;

  // The request's eviction policy (default: none). Set before Schedule();
  // kept across Release() (preemption), dropped by Free().
  void SetPolicy(scheduler::RequestId id, const KvPolicyConfig& policy);
  [[nodiscard]] const KvPageMath& math() const { return math_; }
  // The request's cache, created empty on first use.
  SequenceKv& Get(scheduler::RequestId id);
  [[nodiscard]] BlockPool& pool() { return pool_; }
  [[nodiscard]] int32_t num_sequences() const { return static_cast<int32_t>(seqs_.size()); }

 private:
  BlockPool& pool_;
  const int32_t num_layers_;
  const KvPageMath math_;
  std::map<scheduler::RequestId, std::unique_ptr<SequenceKv>> seqs_;
  std::map<scheduler::RequestId, KvPolicyConfig> policies_;
};

}  // namespace restkv::engine
