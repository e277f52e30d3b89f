// SequenceKv: one sequence's KV cache as per-layer block tables over a
// BlockPool.
//
// Each layer has its own page list and its own filled-slot count, so layers
// may later hold different numbers of tokens (eviction). Pages are allocated
// by Reserve() before a forward step and the new slots counted by Commit()
// after it; Release() (or the destructor) returns every page to the pool.
//
//   layer l:  pages[l] = [p0 | p1 | ... ]   slots 0 .. cached_len[l]-1 filled
//
// Thread safety: none (engine thread).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "engine/kv/block_pool.h"

namespace restkv::engine {

class SequenceKv {
 public:
  SequenceKv(BlockPool& pool, int32_t num_layers);
  ~SequenceKv();
  SequenceKv(const SequenceKv&) = delete;
  SequenceKv& operator=(const SequenceKv&) = delete;

  // Makes every layer able to take `num_new` more slots. Returns false (and
  // allocates nothing) when the pool has too few free pages.
  bool Reserve(int32_t num_new) { return ReserveLayers(0, num_layers(), num_new); }
  // The same for layers [layer_begin, layer_end) only (a prefill slice).
  bool ReserveLayers(int32_t layer_begin, int32_t layer_end, int32_t num_new);
  // Pages Reserve(num_new) would need now.
  [[nodiscard]] int32_t PagesNeeded(int32_t num_new) const {
    return PagesNeededLayers(0, num_layers(), num_new);
  }
  [[nodiscard]] int32_t PagesNeededLayers(int32_t layer_begin, int32_t layer_end,
                                          int32_t num_new) const;
  // Counts `num_new` slots as filled on every layer. REQUIRES: reserved.
  void Commit(int32_t num_new) { CommitLayers(0, num_layers(), num_new); }
  void CommitLayers(int32_t layer_begin, int32_t layer_end, int32_t num_new);
  // Keeps the first `new_len` slots of `layer` and returns the pages past
  // ceil(new_len / block) to the pool (eviction, after compaction).
  // Returns the number of pages released. REQUIRES: new_len <= cached_len.
  int32_t TruncateLayer(int32_t layer, int32_t new_len);
  // Returns all pages to the pool; the sequence becomes empty.
  void Release();
  // Head-wise eviction (AdaKV): after TruncateLayer(layer, max of lens),
  // KV head h of `layer` holds lens[h] valid slots; its slots
  // [lens[h], cached_len) become padding that attention skips, and tokens
  // appended later are valid for every head. Pages stay per layer.
  // REQUIRES: lens has one entry per KV head, max(lens) == cached_len[layer].
  void SetHeadLengths(int32_t layer, std::vector<int32_t> lens);
  // Per layer: empty (every head holds cached_len slots) or the lens above.
  [[nodiscard]] absl::Span<const std::vector<int32_t>> head_len() const { return head_len_; }
  // Per layer: where the padding ends (cached_len right after eviction).
  [[nodiscard]] absl::Span<const int32_t> padding_end() const { return padding_end_; }

  [[nodiscard]] absl::Span<const int32_t> cached_len() const { return cached_len_; }
  [[nodiscard]] absl::Span<const std::vector<float*>> page_ptrs() const { return page_ptrs_; }
  [[nodiscard]] const std::vector<int32_t>& page_ids(int32_t layer) const {
    return page_ids_[layer];
  }
  [[nodiscard]] int32_t num_pages() const;
  [[nodiscard]] int32_t block_size() const { return pool_.shape().block_size; }
  // Byte layout (and dtype) of the pages.
  [[nodiscard]] kernels::KvPageLayout layout() const { return pool_.shape().layout(); }
  [[nodiscard]] int32_t num_layers() const { return static_cast<int32_t>(cached_len_.size()); }

 private:
  BlockPool& pool_;
  std::vector<int32_t> cached_len_;             // [L]
  std::vector<std::vector<int32_t>> page_ids_;  // [L][pages]
  std::vector<std::vector<float*>> page_ptrs_;  // [L][pages], PageData of page_ids_
  std::vector<std::vector<int32_t>> head_len_;  // [L][Hkv] or [L][0]
  std::vector<int32_t> padding_end_;            // [L]
};

}  // namespace restkv::engine
