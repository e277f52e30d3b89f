// FakeKv: a KvAllocator made of page counts, for the scheduler's tests.
#pragma once

#include <map>

#include "scheduler/kv_allocator.h"

namespace restkv::scheduler {

// A KV cache made of numbers: every layer of a request holds
// ceil(tokens / block) pages; no eviction.
class FakeKv final : public KvAllocator {
 public:
  FakeKv(int32_t pages, int32_t layers, int32_t block = 16)
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
  bool AllocatePrefill(RequestId id, int32_t n, int32_t l0, int32_t l1) override {
    const int32_t need = (l1 - l0) * Ceil(n);
    if (need > NumFreePages()) return false;
    used_ += need;
    held_[id] += need;
    if (l1 == layers_) tokens_[id] = n;
    return true;
  }
  bool AllocateDecode(RequestId id, int32_t n) override {
    const int32_t need = DecodePages(id, n);
    if (need > NumFreePages()) return false;
    used_ += need;
    held_[id] += need;
    tokens_[id] += n;
    return true;
  }
  void Release(RequestId id) override {
    ++releases_;
    Free(id);
    --frees_;
  }
  void Free(RequestId id) override {
    ++frees_;
    used_ -= PagesHeld(id);
    held_.erase(id);
    tokens_.erase(id);
  }
  int32_t used() const { return used_; }
  int32_t releases() const { return releases_; }
  int32_t frees() const { return frees_; }

 private:
  int32_t Ceil(int32_t n) const { return (n + block_ - 1) / block_; }
  int32_t total_, layers_, block_, used_ = 0, releases_ = 0, frees_ = 0;
  std::map<RequestId, int32_t> held_, tokens_;
};

}  // namespace restkv::scheduler
