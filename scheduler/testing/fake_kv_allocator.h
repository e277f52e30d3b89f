// FakeKvAllocator: a KV cache made of numbers, for scheduler tests.
//
// Every layer of a request holds ceil(tokens / block) pages and nothing is
// evicted. Like KvCacheManager it takes no pages in CoversPrefill: a prefill
// slice's pages are taken by whoever runs it, here RunPrefill (the engine's
// forward pass in production). kv_allocator_contract_test runs the same cases
// over this fake and KvCacheManager, so the two cannot drift apart.
//
// Prefix cache: set_cached_prefix(id, t) says the first t tokens of a request
// are cached (whole blocks); AcquirePrefix takes their pages as if they had
// been unreferenced cached blocks (the pages count as held, like a prefill's).
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>

#include "scheduler/kv_allocator.h"

namespace restkv::scheduler {

class FakeKvAllocator final : public KvAllocator {
 public:
  FakeKvAllocator(int32_t pages, int32_t layers, int32_t block = 16)
      : total_(pages), layers_(layers), block_(block) {}

  int32_t NumFreePages() const override { return total_ - used_; }
  int32_t PagesHeld(RequestId id) const override {
    auto it = held_.find(id);
    return it == held_.end() ? 0 : it->second;
  }
  int32_t PrefillPeakPages(RequestId, int32_t n) const override { return layers_ * Ceil(n); }
  int32_t DecodePages(RequestId id, int32_t n) const override {
    const int32_t t = tokens_.count(id) ? tokens_.at(id) : 0;
    return layers_ * (Ceil(t + n) - Ceil(t));
  }
  bool CoversPrefill(RequestId id, int32_t n, int32_t, int32_t) const override {
    return PrefillPeakPages(id, n) - PagesHeld(id) <= NumFreePages();
  }
  int32_t CachedPrefixTokens(RequestId id, int32_t n) const override {
    auto it = prefix_.find(id);
    if (it == prefix_.end() || PagesHeld(id) > 0) return 0;
    return std::min(it->second, (n - 1) / block_ * block_);
  }
  int32_t AcquirePrefix(RequestId id, int32_t n) override {
    const int32_t t = CachedPrefixTokens(id, n);
    Take(id, layers_ * Ceil(t));
    return t;
  }
  bool AllocateDecode(RequestId id, int32_t n) override {
    const int32_t need = DecodePages(id, n);
    if (need > NumFreePages()) return false;
    Take(id, need);
    tokens_[id] += n;
    return true;
  }
  void Release(RequestId id) override {
    ++releases_;
    Return(id);
  }
  void Free(RequestId id) override {
    ++frees_;
    Return(id);
    prefix_.erase(id);
  }

  void set_cached_prefix(RequestId id, int32_t tokens) { prefix_[id] = tokens; }

  // What running prefill layers [l0, l1) over `n` tokens takes (beyond the
  // `prefix` tokens mapped at admission). False (and nothing taken) when the
  // pool is short.
  bool RunPrefill(RequestId id, int32_t n, int32_t l0, int32_t l1, int32_t prefix = 0) {
    const int32_t need = (l1 - l0) * (Ceil(n) - Ceil(prefix));
    if (need > NumFreePages()) return false;
    Take(id, need);
    if (l1 == layers_) tokens_[id] = n;
    return true;
  }

  [[nodiscard]] int32_t used() const { return used_; }
  [[nodiscard]] int32_t releases() const { return releases_; }
  [[nodiscard]] int32_t frees() const { return frees_; }

 private:
  int32_t Ceil(int32_t n) const { return (n + block_ - 1) / block_; }
  void Take(RequestId id, int32_t pages) {
    used_ += pages;
    held_[id] += pages;
  }
  void Return(RequestId id) {
    used_ -= PagesHeld(id);
    held_.erase(id);
    tokens_.erase(id);
  }

  int32_t total_, layers_, block_, used_ = 0, releases_ = 0, frees_ = 0;
  std::map<RequestId, int32_t> held_, tokens_, prefix_;
};

}  // namespace restkv::scheduler
