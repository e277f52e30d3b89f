#include "engine/kv/sequence_kv.h"

#include <algorithm>
#include <utility>

#include "common/check.h"

namespace restkv::engine {

SequenceKv::SequenceKv(BlockPool& pool, int32_t num_layers)
    : pool_(pool),
      cached_len_(num_layers, 0),
      page_ids_(num_layers),
      page_ptrs_(num_layers),
      head_len_(num_layers),
      padding_end_(num_layers, 0) {}

SequenceKv::~SequenceKv() { Release(); }

int32_t SequenceKv::PagesNeededLayers(int32_t layer_begin, int32_t layer_end,
                                      int32_t num_new) const {
  const int32_t bs = pool_.shape().block_size;
  int32_t needed = 0;
  for (int32_t l = layer_begin; l < layer_end; ++l) {
    const int32_t want = (cached_len_[l] + num_new + bs - 1) / bs;
    needed += std::max(0, want - static_cast<int32_t>(page_ids_[l].size()));
  }
  return needed;
}

bool SequenceKv::ReserveLayers(int32_t layer_begin, int32_t layer_end, int32_t num_new) {
  RESTKV_CHECK(0 <= layer_begin && layer_begin <= layer_end && layer_end <= num_layers());
  if (PagesNeededLayers(layer_begin, layer_end, num_new) > pool_.num_free()) return false;
  const int32_t bs = pool_.shape().block_size;
  for (int32_t l = layer_begin; l < layer_end; ++l) {
    const int32_t want = (cached_len_[l] + num_new + bs - 1) / bs;
    while (static_cast<int32_t>(page_ids_[l].size()) < want) {
      const std::optional<int32_t> id = pool_.Allocate();
      RESTKV_CHECK(id.has_value()) << "pool ran dry after PagesNeeded said it would not";
      page_ids_[l].push_back(*id);
      page_ptrs_[l].push_back(pool_.PageData(*id));
    }
  }
  return true;
}

void SequenceKv::CommitLayers(int32_t layer_begin, int32_t layer_end, int32_t num_new) {
  const int32_t bs = pool_.shape().block_size;
  for (int32_t l = layer_begin; l < layer_end; ++l) {
    RESTKV_CHECK_LE(cached_len_[l] + num_new, static_cast<int32_t>(page_ids_[l].size()) * bs)
        << "layer " << l;
    cached_len_[l] += num_new;
  }
}

int32_t SequenceKv::TruncateLayer(int32_t layer, int32_t new_len) {
  // Eviction rewrites the kept pages (compaction): never a shared page.
  RESTKV_CHECK(!has_shared_blocks()) << "eviction on a sequence that shares cached blocks";
  RESTKV_CHECK(new_len >= 0 && new_len <= cached_len_[layer])
      << new_len << " > " << cached_len_[layer];
  const int32_t bs = pool_.shape().block_size;
  const size_t keep_pages = static_cast<size_t>((new_len + bs - 1) / bs);
  int32_t released = 0;
  while (page_ids_[layer].size() > keep_pages) {
    pool_.Free(page_ids_[layer].back());
    page_ids_[layer].pop_back();
    page_ptrs_[layer].pop_back();
    ++released;
  }
  cached_len_[layer] = new_len;
  return released;
}

void SequenceKv::Release() {
  for (size_t l = 0; l < page_ids_.size(); ++l) {
    for (size_t i = 0; i < page_ids_[l].size(); ++i) {
      if (cached_block(static_cast<int32_t>(i)) == kNoBlock) pool_.Free(page_ids_[l][i]);
    }
    page_ids_[l].clear();
    page_ptrs_[l].clear();
    cached_len_[l] = 0;
    head_len_[l].clear();
    padding_end_[l] = 0;
  }
  for (auto b = blocks_.rbegin(); b != blocks_.rend(); ++b) {
    if (*b != kNoBlock) pool_.ReleaseBlock(*b);
  }
  blocks_.clear();
  num_mapped_ = 0;
  DropHeld();
}

void SequenceKv::DropHeld() {
  for (auto b = held_.rbegin(); b != held_.rend(); ++b) pool_.ReleaseBlock(*b);
  held_.clear();
}

void SequenceKv::HoldPrefix(BlockId id) {
  RESTKV_CHECK_EQ(num_pages(), 0) << "a prefix to copy after pages were taken";
  pool_.AcquireBlock(id);
  held_.push_back(id);
}

bool SequenceKv::CopyPrefixIntoLayer(int32_t layer) {
  if (held_.empty() || cached_len_[layer] != 0 || !page_ids_[layer].empty()) return true;
  if (static_cast<int32_t>(held_.size()) > pool_.num_free()) return false;
  for (BlockId b : held_) {
    const std::optional<int32_t> id = pool_.Allocate();
    RESTKV_CHECK(id.has_value()) << "pool ran dry after num_free said it would not";
    pool_.CopyPage(pool_.BlockPages(b)[layer], *id);
    page_ids_[layer].push_back(*id);
    page_ptrs_[layer].push_back(pool_.PageData(*id));
  }
  cached_len_[layer] = static_cast<int32_t>(held_.size()) * block_size();
  if (layer == num_layers() - 1) DropHeld();
  return true;
}

void SequenceKv::MapCachedBlock(BlockId id) {
  const int32_t bs = pool_.shape().block_size;
  for (int32_t l = 0; l < num_layers(); ++l) {
    RESTKV_CHECK(static_cast<int32_t>(page_ids_[l].size()) == num_mapped_ &&
                 cached_len_[l] == num_mapped_ * bs)
        << "layer " << l << ": a cached block after private pages";
  }
  const std::vector<int32_t>& pages = pool_.AcquireBlock(id);
  RESTKV_CHECK_EQ(static_cast<int32_t>(pages.size()), num_layers());
  for (int32_t l = 0; l < num_layers(); ++l) {
    page_ids_[l].push_back(pages[l]);
    page_ptrs_[l].push_back(pool_.PageData(pages[l]));
    cached_len_[l] += bs;
  }
  blocks_.push_back(id);
  ++num_mapped_;
}

void SequenceKv::MarkCached(int32_t index, BlockId id) {
  if (static_cast<int32_t>(blocks_.size()) <= index) blocks_.resize(index + 1, kNoBlock);
  RESTKV_CHECK(blocks_[index] == kNoBlock) << "block " << index << " is already cached";
  blocks_[index] = id;
}

bool SequenceKv::has_shared_blocks() const {
  return std::any_of(blocks_.begin(), blocks_.end(), [](BlockId b) { return b != kNoBlock; });
}

void SequenceKv::SetHeadLengths(int32_t layer, std::vector<int32_t> lens) {
  RESTKV_CHECK_EQ(static_cast<int32_t>(lens.size()), pool_.shape().num_kv_heads);
  RESTKV_CHECK_EQ(*std::max_element(lens.begin(), lens.end()), cached_len_[layer]);
  padding_end_[layer] = cached_len_[layer];
  head_len_[layer] = std::move(lens);
}

int32_t SequenceKv::num_pages() const {
  int32_t n = 0;
  for (const auto& ids : page_ids_) n += static_cast<int32_t>(ids.size());
  return n;
}

}  // namespace restkv::engine
