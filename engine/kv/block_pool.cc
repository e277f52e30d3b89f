#include "engine/kv/block_pool.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/status_macros.h"

namespace restkv::engine {

absl::StatusOr<std::unique_ptr<BlockPool>> BlockPool::Create(kernels::Backend& backend,
                                                             const KvPageShape& shape,
                                                             int32_t num_pages) {
  if (num_pages < 1 || shape.num_kv_heads <= 0 || shape.head_dim <= 0 || shape.block_size <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "KV pool needs at least one page of non-zero size (got %d pages of %d bytes)", num_pages,
        shape.page_bytes()));
  }
  RESTKV_ASSIGN_OR_RETURN(auto slab,
                          backend.Allocate(static_cast<size_t>(num_pages) * shape.page_bytes()));
  return std::unique_ptr<BlockPool>(new BlockPool(backend, std::move(slab), shape, num_pages));
}

BlockPool::BlockPool(kernels::Backend& backend, std::unique_ptr<kernels::Buffer> slab,
                     const KvPageShape& shape, int32_t num_pages)
    : backend_(backend),
      slab_(std::move(slab)),
      shape_(shape),
      state_(num_pages, PageState::kFree) {
  free_.reserve(num_pages);
  // Pushed in reverse so the first allocations hand out ids 0, 1, 2, ...
  for (int32_t id = num_pages - 1; id >= 0; --id) free_.push_back(id);
}

std::optional<int32_t> BlockPool::Allocate() {
  if (free_.empty()) {
    if (lru_.empty()) return std::nullopt;
    ReclaimOldest();
  }
  const int32_t id = free_.back();
  free_.pop_back();
  state_[id] = PageState::kOwned;
  NoteUsed();
  return id;
}

void BlockPool::Free(int32_t id) {
  RESTKV_CHECK(id >= 0 && id < num_pages()) << "page id " << id;
  RESTKV_CHECK(state_[id] != PageState::kCached) << "page " << id << " belongs to a cached block";
  RESTKV_CHECK(state_[id] == PageState::kOwned) << "page " << id << " freed twice";
  state_[id] = PageState::kFree;
  free_.push_back(id);
}

void BlockPool::ReclaimOldest() { Drop(blocks_.find(lru_.front())); }

void BlockPool::Drop(std::unordered_map<BlockId, CachedBlock>::iterator it) {
  const BlockId id = it->first;
  CachedBlock& b = it->second;
  RESTKV_CHECK_EQ(b.refs, 0) << "block " << id << " is referenced";
  lru_.erase(b.lru);
  lru_pages_ -= static_cast<int32_t>(b.pages.size());
  // Pushed in reverse so the block's layer-0 page is handed out first.
  for (auto p = b.pages.rbegin(); p != b.pages.rend(); ++p) {
    state_[*p] = PageState::kFree;
    free_.push_back(*p);
  }
  auto [first, last] = by_hash_.equal_range(b.hash);
  for (auto h = first; h != last; ++h) {
    if (h->second == id) {
      by_hash_.erase(h);
      break;
    }
  }
  blocks_.erase(it);
}

std::unordered_map<BlockId, BlockPool::CachedBlock>::iterator BlockPool::FindStaged(BlockId id) {
  auto it = blocks_.find(id);
  if (it != blocks_.end()) RESTKV_CHECK(it->second.staged) << "block " << id << " is published";
  return it;
}

int32_t BlockPool::TakeCopy(int32_t src) {
  RESTKV_CHECK(!free_.empty());
  const int32_t page = free_.back();
  free_.pop_back();
  state_[page] = PageState::kCached;
  ++lru_pages_;  // a staged block is unreferenced: its pages count as free
  CopyPage(src, page);
  return page;
}

BlockId BlockPool::StageBlock(uint64_t hash, absl::Span<const int32_t> tokens, int32_t src) {
  RESTKV_CHECK_EQ(static_cast<int32_t>(tokens.size()), shape_.block_size);
  if (free_.empty()) return kNoBlock;
  const BlockId id = next_block_++;
  CachedBlock& b = blocks_[id];
  b.hash = hash;
  b.tokens.assign(tokens.begin(), tokens.end());
  b.staged = true;
  b.lru = lru_.insert(lru_.end(), id);
  b.pages.push_back(TakeCopy(src));
  return id;
}

bool BlockPool::StagePage(BlockId id, int32_t src) {
  auto it = FindStaged(id);
  if (it == blocks_.end() || free_.empty()) return false;
  it->second.pages.push_back(TakeCopy(src));
  return true;
}

BlockId BlockPool::PublishBlock(BlockId id, BlockId parent) {
  auto it = FindStaged(id);
  if (it == blocks_.end()) return kNoBlock;
  if (parent != kNoBlock && !IsCached(parent)) {
    Drop(it);
    return kNoBlock;
  }
  CachedBlock& b = it->second;
  if (const BlockId equal = Lookup(parent, b.hash, b.tokens); equal != kNoBlock) {
    Drop(it);
    return equal;
  }
  b.parent = parent;
  b.staged = false;
  by_hash_.emplace(b.hash, id);
  return id;
}

void BlockPool::DropStaged(BlockId id) {
  if (auto it = FindStaged(id); it != blocks_.end()) Drop(it);
}

void BlockPool::Touch(BlockId id) {
  auto it = blocks_.find(id);
  RESTKV_CHECK(it != blocks_.end()) << "block " << id << " is not cached";
  CachedBlock& b = it->second;
  if (b.refs == 0) lru_.splice(lru_.end(), lru_, b.lru);
}

BlockId BlockPool::Lookup(BlockId parent, uint64_t hash, absl::Span<const int32_t> tokens) const {
  auto [first, last] = by_hash_.equal_range(hash);
  for (auto h = first; h != last; ++h) {
    const CachedBlock& b = blocks_.at(h->second);
    // The hash only narrows the search: equal parent and tokens make the
    // whole prefix equal (by induction over the parents).
    if (b.parent == parent && absl::MakeConstSpan(b.tokens) == tokens) return h->second;
  }
  return kNoBlock;
}

const std::vector<int32_t>& BlockPool::AcquireBlock(BlockId id) {
  auto it = blocks_.find(id);
  RESTKV_CHECK(it != blocks_.end()) << "block " << id << " is not cached";
  CachedBlock& b = it->second;
  RESTKV_CHECK(!b.staged) << "block " << id << " is staged, not published";
  if (b.refs++ == 0) {
    lru_.erase(b.lru);
    lru_pages_ -= static_cast<int32_t>(b.pages.size());
    NoteUsed();
  }
  return b.pages;
}

void BlockPool::ReleaseBlock(BlockId id) {
  auto it = blocks_.find(id);
  RESTKV_CHECK(it != blocks_.end()) << "block " << id << " is not cached";
  CachedBlock& b = it->second;
  RESTKV_CHECK_GT(b.refs, 0) << "block " << id << " released more often than acquired";
  if (--b.refs == 0) {
    b.lru = lru_.insert(lru_.end(), id);
    lru_pages_ += static_cast<int32_t>(b.pages.size());
  }
}

BlockId BlockPool::InsertBlock(BlockId parent, uint64_t hash, absl::Span<const int32_t> tokens,
                               absl::Span<const int32_t> pages) {
  RESTKV_CHECK_EQ(static_cast<int32_t>(tokens.size()), shape_.block_size);
  if (Lookup(parent, hash, tokens) != kNoBlock) return kNoBlock;
  for (int32_t p : pages) {
    RESTKV_CHECK(p >= 0 && p < num_pages() && state_[p] == PageState::kOwned)
        << "page " << p << " is not an allocated private page";
    state_[p] = PageState::kCached;
  }
  const BlockId id = next_block_++;
  CachedBlock& b = blocks_[id];
  b.parent = parent;
  b.hash = hash;
  b.tokens.assign(tokens.begin(), tokens.end());
  b.pages.assign(pages.begin(), pages.end());
  b.refs = 1;
  by_hash_.emplace(hash, id);
  return id;
}

const std::vector<int32_t>& BlockPool::BlockPages(BlockId id) const {
  auto it = blocks_.find(id);
  RESTKV_CHECK(it != blocks_.end()) << "block " << id << " is not cached";
  return it->second.pages;
}

void BlockPool::CopyPage(int32_t src, int32_t dst) {
  // Page sizes are multiples of 16 bytes (KvPageLayout): whole floats.
  backend_.CopyDevice(PageData(src), PageData(dst),
                      static_cast<size_t>(shape_.page_bytes()) / sizeof(float));
}

int32_t BlockPool::BlockRefs(BlockId id) const {
  auto it = blocks_.find(id);
  RESTKV_CHECK(it != blocks_.end()) << "block " << id << " is not cached";
  return it->second.refs;
}

float* BlockPool::PageData(int32_t id) const {
  RESTKV_CHECK(id >= 0 && id < num_pages()) << "page id " << id;
  // Page sizes are multiples of 16 bytes (KvPageLayout), so every page is
  // as aligned as the slab.
  return reinterpret_cast<float*>(static_cast<uint8_t*>(slab_->data()) +
                                  static_cast<int64_t>(id) * shape_.page_bytes());
}

}  // namespace restkv::engine
