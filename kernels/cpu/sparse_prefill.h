// Block-sparse prefill attention on the CPU: the pattern (the contract is
// kernels::SparsePrefill in kernels/backend.h) and the rule a row follows.
//
// The pattern is estimated per query head from its last estimate_rows
// queries: their causal softmax attention summed per block of 64 keys, the
// top_blocks blocks with the most mass kept (ties to the lower block), plus
// the sink blocks. It is shared by every sparse row of that head (a
// "vertical" pattern at block granularity, as MInference estimates its
// vertical lines from the last queries); each row adds its own block and the
// local_blocks - 1 before it (the diagonal band). The last dense_rows rows
// attend to every key, so the eviction policies' observation window (the
// last w <= dense_rows rows) sees exact attention.
//
// Cost of the estimate: estimate_rows · N · d per query head, against the
// N² d / 2 of dense prefill attention.
#pragma once

#include <cstdint>
#include <vector>

#include "common/thread_pool.h"
#include "kernels/backend.h"

namespace restkv::kernels::cpu {

// Per query head, one flag per key block: [heads][ceil(kv_len / 64)].
// REQUIRES: seq.kv_len == seq.num_q (the whole sequence's queries), q holds
// them at rows seq.q_begin.. ([rows][heads][d]).
std::vector<uint8_t> EstimateSparsePattern(ThreadPool& pool, const float* q,
                                           const AttentionSeq& seq, int32_t heads,
                                           const KvPageLayout& kv, float scale,
                                           const SparsePrefill& config);

// Whether query row `row` (0-based, at position row) of a head whose pattern
// is `keep` attends to key block `block`.
inline bool SparseRowAttends(const SparsePrefill& config, const uint8_t* keep, int32_t row,
                             int32_t num_rows, int32_t block) {
  if (row >= num_rows - config.dense_rows) return true;
  return keep[block] != 0 || block > row / SparsePrefill::kBlock - config.local_blocks;
}

}  // namespace restkv::kernels::cpu
