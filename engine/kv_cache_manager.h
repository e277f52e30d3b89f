// KvCacheManager: the per-request KV caches (SequenceKv) over one BlockPool,
// answering the scheduler's page questions (scheduler::KvAllocator).
//
// Page arithmetic here is the single source of truth for admission: the
// scheduler admits a request only when free pages cover PrefillPeakPages().
// Without eviction a prefill of n tokens peaks at L·ceil(n / block) pages.
//
// Thread safety: none (engine thread).
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "engine/block_pool.h"
#include "engine/sequence_kv.h"
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
  bool AllocatePrefill(scheduler::RequestId id, int32_t num_tokens, int32_t layer_begin,
                       int32_t layer_end) override;
  bool AllocateDecode(scheduler::RequestId id, int32_t num_tokens) override;
  void Free(scheduler::RequestId id) override;

  // Pages any prefill of num_tokens peaks at (independent of a request).
  [[nodiscard]] int32_t PrefillPeakPagesFor(int32_t num_tokens) const;
  // The request's cache, created empty on first use.
  SequenceKv& Get(scheduler::RequestId id);
  [[nodiscard]] BlockPool& pool() { return pool_; }
  [[nodiscard]] int32_t num_sequences() const { return static_cast<int32_t>(seqs_.size()); }

 private:
  BlockPool& pool_;
  const int32_t num_layers_;
  std::map<scheduler::RequestId, std::unique_ptr<SequenceKv>> seqs_;
};

}  // namespace restkv::engine
