// PrefixStager: lets a prefill that evicts leave its uncompressed prompt in
// the prefix cache.
//
// An evicting request compacts its own pages after each layer, so they can
// never be entered as cached blocks (block_pool.h). Before a layer is
// compacted, though, its pages hold exactly the K/V a full-cache prefill
// would have written (eviction at layer l changes nothing a later layer
// computes). The stager copies the layer's full blocks then into staged
// blocks of the pool, layer by layer, and publishes them after the last
// layer, so the next request with the same prefix — full-cache or evicting —
// finds them.
//
//   prompt:  [held 0][held 1][blk 2][blk 3][blk 4][partial]
//   stages:                  <-- blocks [first, first + count) -->
//
// Held blocks (a cached prefix the request copied from) and blocks already
// cached right after them are not staged again. Staging is best effort and
// never costs admission anything: staged pages count as free, come only from
// the free list, and Allocate may reclaim a staged block at any time, which
// drops it and every block after it (their prefix would be incomplete).
//
// Thread safety: none (engine thread).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "engine/kv/block_pool.h"
#include "engine/kv/sequence_kv.h"

namespace restkv::engine {

class PrefixStager {
 public:
  // Blocks [first_block, first_block + hashes.size()) of `tokens`, whose
  // chain hashes are `hashes`, follow cached block `parent` (kNoBlock when
  // first_block == 0). REQUIRES: `tokens` holds those blocks and outlives
  // the stager.
  PrefixStager(BlockPool& pool, int32_t num_layers, absl::Span<const int32_t> tokens,
               int32_t first_block, std::vector<uint64_t> hashes, BlockId parent);
  ~PrefixStager();
  PrefixStager(const PrefixStager&) = delete;
  PrefixStager& operator=(const PrefixStager&) = delete;

  // Copies `layer`'s pages of the staged blocks out of `seq`, whose layer
  // holds the whole prompt uncompressed. Layers must come in order 0, 1, ...;
  // anything else gives staging up.
  void StageLayer(int32_t layer, const SequenceKv& seq);
  // Once every layer is staged: publishes the blocks (head first, so each
  // finds its parent) and returns how many are cached now; 0 before that.
  int32_t Publish();
  [[nodiscard]] bool complete() const { return layers_done_ == num_layers_; }
  // Blocks still staged.
  [[nodiscard]] int32_t num_staged() const { return static_cast<int32_t>(staged_.size()); }

 private:
  // Drops staged blocks [from, end).
  void DropFrom(size_t from);

  BlockPool& pool_;
  const int32_t num_layers_;
  const absl::Span<const int32_t> tokens_;
  const int32_t first_block_;
  const std::vector<uint64_t> hashes_;
  const BlockId parent_;
  std::vector<BlockId> staged_;  // [i]: block first_block + i
  int32_t layers_done_ = 0;
};

}  // namespace restkv::engine
