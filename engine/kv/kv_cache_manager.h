// KvCacheManager: the per-request KV caches (SequenceKv) over one BlockPool,
// answering the scheduler's page questions (scheduler::KvAllocator), and the
// requests' use of the pool's prefix cache.
//
// Page arithmetic (kv_page_math.h, policy-aware) is the single source of
// truth for admission: the scheduler admits a request only when free pages,
// less those promised to prefills already admitted, cover its prefill peak.
// Prefill pages are then taken layer by layer inside the forward pass (and
// released by eviction before the next layer), so CoversPrefill only
// confirms the promise; decode pages are taken eagerly.
//
// Prefix cache (block_pool.h). A request whose tokens were given by
// SetTokens and whose policy never evicts takes part:
//   - at admission, AcquirePrefix maps the longest run of cached blocks that
//     match its first tokens (always leaving the last token to compute, so
//     the prefill has a logits row), and its prefill runs on the rest;
//   - CacheFullBlocks enters its full blocks (prompt, and later generated
//     tokens) into the cache; the engine calls it after a prefill ends and
//     when the request finishes; Release (preemption) does it itself, so the
//     recompute finds its own blocks if they are not reclaimed meanwhile.
// Before admission PrefillPeakPages is the admission cost: the peak less the
// pages of matching blocks other requests hold (sharing them is free, while
// an unreferenced cached block's pages count as free pages and taking them
// costs as much as allocating).
//
// Requests with an evicting policy never enter their own blocks (their
// compressed pages depend on the whole prompt). They stage copies of their
// uncompressed full blocks instead, layer by layer before each compaction
// (StagerFor, prefix_stager.h), which CacheFullBlocks publishes once the
// prefill's last layer is done: best effort, from free pages only, at no
// admission cost. They also reuse cached blocks, read-only: they hold
// the matching blocks (SequenceKv::HoldPrefix) and each layer starts from a
// copy of its pages of them, so the prefix's rows are neither computed nor
// written; their queries attend over it and the policy scores it with the
// rest, then compacts the kept tokens in the request's own pages. The
// prefix stops short of the policy's scoring window (those queries must be
// computed), and H2O, which scores with every query, looks nothing up. Their
// admission cost is the peak plus the held blocks that nobody else holds
// (taking those out of the free pages); the held pages count as theirs
// until the last layer has its copy.
//
// Thread safety: none (engine thread).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "engine/eviction/policy_config.h"
#include "engine/kv/block_pool.h"
#include "engine/kv/page_math.h"
#include "engine/kv/prefix_stager.h"
#include "engine/kv/sequence_kv.h"
#include "scheduler/kv_allocator.h"

namespace restkv::engine {

// Prefix-cache counters, in tokens (as vLLM's prefix_cache_queries/hits).
struct PrefixCacheCounters {
  int64_t query_tokens = 0;  // prompt tokens of admissions that looked up
  int64_t hit_tokens = 0;    // of those, tokens mapped from cached blocks
};

class KvCacheManager final : public scheduler::KvAllocator {
 public:
  KvCacheManager(BlockPool& pool, int32_t num_layers, bool prefix_caching = true);

  // KvAllocator:
  int32_t NumFreePages() const override { return pool_.num_free(); }
  int32_t PagesHeld(scheduler::RequestId id) const override;
  int32_t PrefillPeakPages(scheduler::RequestId id, int32_t num_tokens) const override;
  int32_t DecodePages(scheduler::RequestId id, int32_t num_tokens) const override;
  bool CoversPrefill(scheduler::RequestId id, int32_t num_tokens, int32_t layer_begin,
                     int32_t layer_end) const override;
  bool AllocateDecode(scheduler::RequestId id, int32_t num_tokens) override;
  int32_t CachedPrefixTokens(scheduler::RequestId id, int32_t num_tokens) const override;
  int32_t AcquirePrefix(scheduler::RequestId id, int32_t num_tokens) override;
  void Release(scheduler::RequestId id) override;
  void Free(scheduler::RequestId id) override;

  // The request's eviction policy (default: none). Set before Schedule();
  // kept across Release() (preemption), dropped by Free().
  void SetPolicy(scheduler::RequestId id, const KvPolicyConfig& policy);
  // The request's tokens (prompt, then each generated token as it is
  // appended), which its cache holds the K/V of in order; `lookup`: it may
  // reuse cached blocks (false when every prompt row must be computed, as
  // for prompt logprobs). REQUIRES: `tokens` outlives Free(id).
  void SetTokens(scheduler::RequestId id, const std::vector<int32_t>* tokens, bool lookup);
  // Enters the request's full blocks whose K/V every layer holds into the
  // prefix cache (no-op for requests that do not take part).
  void CacheFullBlocks(scheduler::RequestId id);
  // The stager of the request's current prefill of `num_tokens` tokens
  // (created on first use), or null when it does not stage: the cache is
  // off, the request has no tokens, or its policy does not evict (its own
  // blocks are entered instead). CacheFullBlocks publishes it once every
  // layer is staged; Release and Free drop it.
  PrefixStager* StagerFor(scheduler::RequestId id, int32_t num_tokens);
  // Tokens its current attempt mapped from the cache (AcquirePrefix).
  [[nodiscard]] int32_t prefix_tokens(scheduler::RequestId id) const;
  [[nodiscard]] const PrefixCacheCounters& prefix_counters() const { return counters_; }
  [[nodiscard]] bool prefix_caching() const { return prefix_caching_; }

  [[nodiscard]] const KvPageMath& math() const { return math_; }
  // The request's cache, created empty on first use.
  SequenceKv& Get(scheduler::RequestId id);
  [[nodiscard]] BlockPool& pool() { return pool_; }
  [[nodiscard]] int32_t num_sequences() const { return static_cast<int32_t>(seqs_.size()); }

 private:
  struct Prefix {
    const std::vector<int32_t>* tokens = nullptr;
    bool lookup = false;
    bool acquired = false;  // AcquirePrefix ran for the current attempt
    int32_t mapped_tokens = 0;
    std::vector<uint64_t> hashes;  // chain hashes of the first blocks (prefix_hash.h)
  };
  // How a request reuses cached blocks.
  enum class Reuse { kNone, kMap, kCopy };
  [[nodiscard]] KvPolicyConfig PolicyOf(scheduler::RequestId id) const;
  // The request's Prefix if it has tokens and the cache is on, else null.
  [[nodiscard]] Prefix* Find(scheduler::RequestId id) const;
  [[nodiscard]] Reuse ReuseOf(scheduler::RequestId id) const;
  // The cached blocks that match the first of `max_blocks` full blocks of
  // the request's tokens, in order, up to the first miss.
  [[nodiscard]] std::vector<BlockId> CachedChain(Prefix& p, int32_t max_blocks) const;
  // The cached blocks matching the request's first blocks, up to those that
  // leave at least one of `num_tokens` to compute (and, for kCopy, the
  // policy's scoring window).
  [[nodiscard]] std::vector<BlockId> Matches(scheduler::RequestId id, Prefix& p,
                                             int32_t num_tokens) const;

  BlockPool& pool_;
  const int32_t num_layers_;
  const KvPageMath math_;
  const bool prefix_caching_;
  std::map<scheduler::RequestId, std::unique_ptr<SequenceKv>> seqs_;
  std::map<scheduler::RequestId, KvPolicyConfig> policies_;
  std::map<scheduler::RequestId, std::unique_ptr<PrefixStager>> stagers_;
  // mutable: chain hashes are computed on first use by const lookups.
  mutable std::map<scheduler::RequestId, Prefix> prefixes_;
  PrefixCacheCounters counters_;
};

}  // namespace restkv::engine
