// FakeKvAllocator: a KV cache made of numbers, for scheduler tests.
//
// Every layer of a request holds ceil(tokens / block) pages and nothing is
// evicted. Like KvCacheManager it takes no pages in CoversPrefill: a prefill
// slice's pages are taken by whoever runs it, here RunPrefill (the engine's
// forward pass in production). kv_allocator_contract_test runs the same cases
// over this fake and KvCacheManager, so the two cannot drift apart.
#pragma once

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
  }

  // What running prefill layers [l0, l1) over `n` tokens takes. False (and
  // nothing taken) when the pool is short.
  bool RunPrefill(RequestId id, int32_t n, int32_t l0, int32_t l1) {
    const int32_t need = (l1 - l0) * Ceil(n);
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
  std::map<RequestId, int32_t> held_, tokens_;
};

}  // namespace restkv::scheduler
