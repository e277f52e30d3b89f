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
// Prefix cache (block_pool.h): block i of the sequence (slots [i·block,
// (i+1)·block) on every layer) is either private — its own page per layer —
// or a reference to a cached block, whose pages it shares with the cache and
// other sequences and never writes: MapCachedBlock() appends a cached block
// to an all-shared prefix; MarkCached() records that the sequence's own full
// block i was entered in the cache. Release() frees the private pages and
// drops the references, last block first, so the LRU reclaims a prefix's
// tail before its head. Truncation (eviction) is refused on a sequence with
// shared blocks.
//
// A sequence that evicts during prefill never maps shared pages (eviction
// compacts its pages in place). Instead it holds cached blocks read-only
// (HoldPrefix) and, as each layer starts, copies that layer's pages of them
// into pages of its own (CopyPrefixIntoLayer): the cached pages are only
// read, and the prefix rows need not be computed. The references drop once
// the last layer has its copy.
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

  // Appends cached block `id` as the next block on every layer.
  // REQUIRES: every layer holds exactly num_shared_prefix() full blocks,
  // all shared (nothing private yet).
  void MapCachedBlock(BlockId id);
  // The sequence's own block `index` (full on every layer) is now cached
  // block `id` (BlockPool::InsertBlock took its pages with one reference).
  void MarkCached(int32_t index, BlockId id);
  // Holds cached block `id` (a reference) to copy into each layer later.
  // REQUIRES: no layer holds pages yet.
  void HoldPrefix(BlockId id);
  // If blocks are held and `layer` is empty: copies the layer's pages of the
  // held blocks into new pages of its own (their slots count as filled);
  // after the last layer, drops the references. False (nothing allocated)
  // when the pool is short.
  bool CopyPrefixIntoLayer(int32_t layer);
  // Pages of the held blocks (one per layer each), still to be copied.
  [[nodiscard]] int32_t held_prefix_pages() const {
    return static_cast<int32_t>(held_.size()) * num_layers();
  }
  [[nodiscard]] int32_t held_prefix_tokens() const {
    return static_cast<int32_t>(held_.size()) * block_size();
  }
  // The cached block behind block `index`, or kNoBlock (private).
  [[nodiscard]] BlockId cached_block(int32_t index) const {
    return index < static_cast<int32_t>(blocks_.size()) ? blocks_[index] : kNoBlock;
  }
  // Leading blocks mapped by MapCachedBlock (shared before any own page).
  [[nodiscard]] int32_t num_shared_prefix() const { return num_mapped_; }
  [[nodiscard]] bool has_shared_blocks() const;

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
  std::vector<BlockId> blocks_;                 // [blocks]: cached block, or kNoBlock
  int32_t num_mapped_ = 0;                      // leading blocks from MapCachedBlock
  std::vector<BlockId> held_;                   // read-only prefix blocks (HoldPrefix)
  void DropHeld();
  std::vector<std::vector<int32_t>> head_len_;  // [L][Hkv] or [L][0]
  std::vector<int32_t> padding_end_;            // [L]
};

}  // namespace restkv::engine
