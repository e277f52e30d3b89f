// KvAllocator: what the scheduler may ask of the KV cache — page counts and
// allocation — without seeing pages, layers' tensors or policies.
//
// The engine implements it over its KvCacheManager (which knows the eviction
// policy and budget, so "pages at the prefill peak" is the post-eviction
// footprint); scheduler tests with FakeKvAllocator (scheduler/testing/), and
// engine/kv/kv_allocator_contract_test.cc holds both to the same cases.
#pragma once

#include <cstdint>

namespace restkv::scheduler {

using RequestId = int64_t;

class KvAllocator {
 public:
  virtual ~KvAllocator() = default;

  [[nodiscard]] virtual int32_t NumFreePages() const = 0;
  // Pages the request holds now.
  [[nodiscard]] virtual int32_t PagesHeld(RequestId id) const = 0;
  // Most pages the request will hold at once while prefilling `num_tokens`
  // tokens from an empty cache; before admission, its admission cost (less
  // the pages of cached prefix blocks it would share with other requests).
  [[nodiscard]] virtual int32_t PrefillPeakPages(RequestId id, int32_t num_tokens) const = 0;
  // Pages needed to append `num_tokens` decoded tokens on every layer.
  [[nodiscard]] virtual int32_t DecodePages(RequestId id, int32_t num_tokens) const = 0;

  // Whether the free pages cover what the request can still take while
  // running prefill layers [layer_begin, layer_end) over `num_tokens` tokens
  // (its prefill peak less the pages it holds). Allocates nothing: a slice's
  // pages are taken by whoever runs it — the engine's forward pass, layer by
  // layer, returning evicted pages before the next layer — so reserving them
  // here would count a layer's full footprint that eviction is about to free.
  [[nodiscard]] virtual bool CoversPrefill(RequestId id, int32_t num_tokens, int32_t layer_begin,
                                           int32_t layer_end) const = 0;
  // Prefix cache: how many of the request's first `num_tokens` tokens its
  // cache could map from cached blocks now, on every layer (a multiple of
  // the block, less than num_tokens); 0 without a prefix cache or once it
  // holds pages. Looks only.
  [[nodiscard]] virtual int32_t CachedPrefixTokens(RequestId id, int32_t num_tokens) const = 0;
  // At admission: maps those cached blocks into the request's cache and
  // returns their token count (what CachedPrefixTokens said, if nothing was
  // allocated in between); its prefill then runs on the tokens after them.
  virtual int32_t AcquirePrefix(RequestId id, int32_t num_tokens) = 0;
  // Allocates pages for `num_tokens` more decoded tokens. False if short.
  virtual bool AllocateDecode(RequestId id, int32_t num_tokens) = 0;
  // Preemption: returns every page the request holds but keeps what the
  // allocator knows about it (its eviction policy and budget), so that its
  // recompute is admitted at the same footprint as its first attempt.
  virtual void Release(RequestId id) = 0;
  // The request is gone (finished, cancelled, failed): returns its pages and
  // forgets it.
  virtual void Free(RequestId id) = 0;
};

}  // namespace restkv::scheduler
