#include "engine/kv/prefix_stager.h"

#include <utility>

namespace restkv::engine {

PrefixStager::PrefixStager(BlockPool& pool, int32_t num_layers, absl::Span<const int32_t> tokens,
                           int32_t first_block, std::vector<uint64_t> hashes, BlockId parent)
    : pool_(pool),
      num_layers_(num_layers),
      tokens_(tokens),
      first_block_(first_block),
      hashes_(std::move(hashes)),
      parent_(parent) {}

PrefixStager::~PrefixStager() { DropFrom(0); }

void PrefixStager::DropFrom(size_t from) {
  // Tail first, as sequences release theirs.
  while (staged_.size() > from) {
    pool_.DropStaged(staged_.back());
    staged_.pop_back();
  }
}

void PrefixStager::StageLayer(int32_t layer, const SequenceKv& seq) {
  if (layer != layers_done_) {
    // Out of order (a retried layer): the pages per block would not line
    // up. Everything staged is dropped, so Publish enters nothing.
    DropFrom(0);
    return;
  }
  const int32_t bs = pool_.shape().block_size;
  const std::vector<int32_t>& pages = seq.page_ids(layer);
  if (layer == 0) {
    const int32_t n = static_cast<int32_t>(hashes_.size());
    for (int32_t i = 0; i < n; ++i) {
      const int32_t b = first_block_ + i;
      const BlockId id = pool_.StageBlock(hashes_[i], tokens_.subspan(b * bs, bs), pages[b]);
      if (id == kNoBlock) break;
      staged_.push_back(id);
    }
  } else {
    for (size_t i = 0; i < staged_.size(); ++i) {
      if (!pool_.StagePage(staged_[i], pages[first_block_ + i])) {
        DropFrom(i);
        break;
      }
    }
  }
  ++layers_done_;
}

int32_t PrefixStager::Publish() {
  if (!complete()) return 0;
  std::vector<BlockId> published;
  BlockId parent = parent_;
  for (BlockId id : staged_) {
    parent = pool_.PublishBlock(id, parent);
    if (parent == kNoBlock) break;  // reclaimed: the rest has no prefix left
    published.push_back(parent);
  }
  DropFrom(published.size());  // what follows a reclaimed block
  staged_.clear();
  // Staged head first, the head would be reclaimed first: make the tail the
  // least recent, as a sequence's release order does.
  for (auto b = published.rbegin(); b != published.rend(); ++b) pool_.Touch(*b);
  return static_cast<int32_t>(published.size());
}

}  // namespace restkv::engine
