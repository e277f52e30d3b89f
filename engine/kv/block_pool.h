// BlockPool: the KV page pool. One slab carved into fixed pages at start-up,
// and the prefix cache of full blocks of tokens over those pages.
//
// A page holds `block_size` token slots of K and V for one layer and all KV
// heads (layout in kernels/backend.h), so any page can serve any layer.
// Allocate/Free are O(1) over a LIFO free list (recently freed pages are
// reused first, which keeps them warm in cache).
//
// Prefix cache. A cached block is one full block of `block_size` tokens of
// a sequence that computed its K/V without eviction: one page per layer
// (`pages[l]`), keyed by a chain hash of its tokens and every token before
// them (prefix_hash.h). Its identity is exact, not the hash: a block stores
// its tokens and its parent block (the cached block before it, by id), and a
// lookup matches only when hash, parent and tokens are all equal, so two
// prefixes whose hashes collide never share pages. Block ids are serial and
// never reused, so a child of a reclaimed parent can no longer be reached.
//
//   sequence A:  [blk 1][blk 2][own page]     refs(1) = 2, refs(2) = 1
//   sequence B:  [blk 1][own page]            LRU (refs 0): blk 3, blk 4
//
// Referenced blocks (refs > 0) are held by sequences and never written: a
// sequence only appends after its last full block. Unreferenced ones stay
// cached in LRU order (least recently released first) and count as free:
// Allocate reclaims the LRU block's pages when the free list is empty, so
// admission and preemption see cached pages as free pages and a cached page
// is dropped before anything is preempted. A hit on an unreferenced block
// takes it out of the LRU (its pages stop counting as free).
//
// Staged blocks. A prefill that evicts (its own pages end compressed) can
// still leave its uncompressed prompt in the cache: as each layer finishes,
// and before the layer is compacted, it copies the layer's full pages into
// staged blocks (StageBlock, StagePage), and after the last layer publishes
// them (PublishBlock), which makes them findable. A staged block is
// unreferenced and in the LRU from the start, so its pages count as free and
// Allocate may reclaim it like any cached block (the stager then gives it
// up): admission arithmetic never sees staged pages. Staging only takes pages
// from the free list, never by reclaiming, so a staged copy displaces
// nothing already cached.
//
// "No page free" is std::nullopt, a normal answer the caller handles
// (preempt, refuse admission), never an error. Freeing a page twice, an
// unknown id or a page that belongs to a cached block is a programming error
// (RESTKV_CHECK).
//
// Thread safety: none; owned and used by the engine thread.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/backend.h"

namespace restkv::engine {

struct KvPageShape {
  int32_t num_kv_heads = 0;                         // Hkv
  int32_t head_dim = 0;                             // d
  int32_t block_size = 16;                          // token slots per page
  kernels::KvDtype dtype = kernels::KvDtype::kF32;  // element type of K and V
  // The page's byte layout (K and V [Hkv][block_size][d] each, q8_0 scales).
  [[nodiscard]] kernels::KvPageLayout layout() const {
    return {num_kv_heads, head_dim, block_size, dtype};
  }
  [[nodiscard]] int64_t page_bytes() const { return layout().page_bytes(); }
};

// A cached block's id: 1, 2, 3, ... in insertion order; 0 = none (the parent
// of a sequence's first block).
using BlockId = int64_t;
inline constexpr BlockId kNoBlock = 0;

class BlockPool {
 public:
  // Errors: InvalidArgument if num_pages < 1 or the shape is empty;
  // ResourceExhausted if the backend cannot allocate the slab.
  static absl::StatusOr<std::unique_ptr<BlockPool>> Create(kernels::Backend& backend,
                                                           const KvPageShape& shape,
                                                           int32_t num_pages);
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // A free page id, or nullopt when none is left. With the free list empty
  // it reclaims the least recently released unreferenced cached block.
  std::optional<int32_t> Allocate();
  // REQUIRES: id was returned by Allocate() and not freed since, and is not
  // a page of a cached block (those go back through ReleaseBlock).
  void Free(int32_t id);

  // --- prefix cache ---
  // The cached block that follows `parent` with these tokens under `hash`,
  // or kNoBlock. Looks only; takes no reference.
  [[nodiscard]] BlockId Lookup(BlockId parent, uint64_t hash,
                               absl::Span<const int32_t> tokens) const;
  // Takes a reference on a cached block (out of the LRU if it had none) and
  // returns its pages, one per layer. REQUIRES: `id` is cached.
  const std::vector<int32_t>& AcquireBlock(BlockId id);
  // Drops a reference; at zero the block joins the LRU's most recent end.
  void ReleaseBlock(BlockId id);
  // Enters a sequence's full block into the cache: `pages` (allocated, one
  // per layer, holding the K/V of `tokens` after `parent`) become the
  // block's, with one reference (the caller's, to drop with ReleaseBlock
  // instead of freeing the pages). kNoBlock when an equal block is already
  // cached (the caller keeps its pages as they are). REQUIRES:
  // tokens.size() == block_size.
  BlockId InsertBlock(BlockId parent, uint64_t hash, absl::Span<const int32_t> tokens,
                      absl::Span<const int32_t> pages);
  // --- staged blocks (above) ---
  // Pages on the free list (num_free() less the unreferenced cached pages):
  // what staging may take.
  [[nodiscard]] int32_t num_free_list() const { return static_cast<int32_t>(free_.size()); }
  // A new staged block for `tokens` under `hash`, its first page (layer 0)
  // a copy of page `src`; kNoBlock when the free list is empty. REQUIRES:
  // tokens.size() == block_size.
  BlockId StageBlock(uint64_t hash, absl::Span<const int32_t> tokens, int32_t src);
  // Appends a copy of page `src` as the staged block's next layer. False
  // (nothing taken) when the block was reclaimed or the free list is empty.
  bool StagePage(BlockId id, int32_t src);
  // Makes staged block `id` (a page for every layer) findable after `parent`.
  // Returns the block now cached for that prefix: `id`, or an equal block
  // cached meanwhile (then `id` is dropped); kNoBlock when `id` or `parent`
  // was reclaimed.
  BlockId PublishBlock(BlockId id, BlockId parent);
  // Drops a staged block (if not reclaimed), its pages back on the free list.
  void DropStaged(BlockId id);
  // Moves an unreferenced cached block to the LRU's most recent end.
  void Touch(BlockId id);

  // A cached block's pages, one per layer. REQUIRES: `id` is cached.
  [[nodiscard]] const std::vector<int32_t>& BlockPages(BlockId id) const;
  // Copies page `src`'s bytes over page `dst` on the backend (device to
  // device on CUDA).
  void CopyPage(int32_t src, int32_t dst);
  // Whether `id` is still cached (not reclaimed).
  [[nodiscard]] bool IsCached(BlockId id) const { return blocks_.count(id) > 0; }
  [[nodiscard]] int32_t BlockRefs(BlockId id) const;
  // Unreferenced cached blocks, least recently released first (the next
  // one Allocate reclaims is front()).
  [[nodiscard]] std::vector<BlockId> LruOrder() const { return {lru_.begin(), lru_.end()}; }
  [[nodiscard]] int32_t num_cached_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  // Pages of unreferenced cached blocks (counted in num_free()).
  [[nodiscard]] int32_t num_cached_free_pages() const { return lru_pages_; }

  // The page's base address (bytes laid out as shape().layout()).
  // REQUIRES: 0 <= id < num_pages().
  [[nodiscard]] float* PageData(int32_t id) const;
  [[nodiscard]] const KvPageShape& shape() const { return shape_; }
  [[nodiscard]] int32_t num_pages() const { return static_cast<int32_t>(state_.size()); }
  // Pages Allocate can still hand out: the free list and the unreferenced
  // cached blocks' pages.
  [[nodiscard]] int32_t num_free() const { return static_cast<int32_t>(free_.size()) + lru_pages_; }
  [[nodiscard]] int32_t num_used() const { return num_pages() - num_free(); }
  // Most pages ever in use at once since creation or ResetHighWater().
  [[nodiscard]] int32_t high_water() const { return high_water_; }
  void ResetHighWater() { high_water_ = num_used(); }

 private:
  enum class PageState : uint8_t { kFree, kOwned, kCached };
  struct CachedBlock {
    BlockId parent = kNoBlock;
    uint64_t hash = 0;
    std::vector<int32_t> tokens;
    std::vector<int32_t> pages;  // [L]
    int32_t refs = 0;
    bool staged = false;               // not findable yet (StageBlock)
    std::list<BlockId>::iterator lru;  // valid while refs == 0
  };

  BlockPool(kernels::Backend& backend, std::unique_ptr<kernels::Buffer> slab,
            const KvPageShape& shape, int32_t num_pages);
  // Drops the LRU front block, its pages back on the free list.
  void ReclaimOldest();
  // Drops unreferenced block `it` (LRU member), its pages back on the free list.
  void Drop(std::unordered_map<BlockId, CachedBlock>::iterator it);
  // The staged block `id`, or blocks_.end() when reclaimed.
  std::unordered_map<BlockId, CachedBlock>::iterator FindStaged(BlockId id);
  // Takes a page off the free list as a page of a cached block, holding a
  // copy of page `src`. REQUIRES: the free list is not empty.
  int32_t TakeCopy(int32_t src);
  void NoteUsed() { high_water_ = std::max(high_water_, num_used()); }

  kernels::Backend& backend_;
  std::unique_ptr<kernels::Buffer> slab_;
  KvPageShape shape_;
  std::vector<int32_t> free_;     // stack of free ids
  std::vector<PageState> state_;  // [num_pages]
  std::unordered_map<BlockId, CachedBlock> blocks_;
  std::unordered_multimap<uint64_t, BlockId> by_hash_;
  std::list<BlockId> lru_;  // unreferenced blocks, least recently released first
  int32_t lru_pages_ = 0;
  BlockId next_block_ = 1;
  int32_t high_water_ = 0;
};

}  // namespace restkv::engine
