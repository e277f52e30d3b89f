// Chain hashes of a token sequence's full blocks, the prefix cache's keys
// (block_pool.h): hash i covers block i's tokens and, through hash i-1,
// every token before them. Equal hashes only nominate a cached block; the
// pool confirms by comparing tokens and parents.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/types/span.h"

namespace restkv::engine {

// Extends `hashes` (those of the first hashes->size() blocks of `tokens`)
// to cover the first `num_blocks` full blocks of `block_size` tokens.
// REQUIRES: num_blocks * block_size <= tokens.size().
inline void ExtendBlockHashes(absl::Span<const int32_t> tokens, int32_t block_size,
                              int32_t num_blocks, std::vector<uint64_t>* hashes) {
  while (static_cast<int32_t>(hashes->size()) < num_blocks) {
    const size_t i = hashes->size();
    const uint64_t parent = i == 0 ? 0 : (*hashes)[i - 1];
    hashes->push_back(absl::HashOf(parent, tokens.subspan(i * block_size, block_size)));
  }
}

}  // namespace restkv::engine
