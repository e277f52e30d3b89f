// Block-sparse prefill attention on the CPU: the pattern (the contract is
// kernels::SparsePrefill in kernels/backend.h) and the rule a row follows.
//
// The pattern is estimated per query head from the call's last
// estimate_rows queries of the sequence (a prefill runs in row chunks; each
// chunk estimates its own, the last chunk's last rows being the prompt's
// last queries): their causal softmax attention summed per block of 64 keys,
// the top_blocks blocks with the most mass kept (ties to the lower block),
// plus the sink blocks. It is shared by every sparse row of that head (a
// "vertical" pattern at block granularity, as MInference estimates its
// vertical lines from the last queries); each row adds its own block and the
// local_blocks - 1 before it (the diagonal band). Rows at positions
// sparse_dense_from and later (the prompt's last dense_rows) attend to every
// key, so the eviction policies' observation window (the last w <=
// dense_rows rows) sees exact attention over the keys it is given.
//
// Cost of the estimate: estimate_rows · kv_len · d per query head and call,
// against the num_q · kv_len · d of dense attention.
#pragma once

#include <cstdint>
#include <vector>

#include "common/thread_pool.h"
#include "kernels/backend.h"

namespace restkv::kernels::cpu {

// Per query head, one flag per key block: [heads][ceil(kv_len / 64)].
// q holds the call's rows ([rows][heads][d]); seq's are at seq.q_begin.
std::vector<uint8_t> EstimateSparsePattern(ThreadPool& pool, const float* q,
                                           const AttentionSeq& seq, int32_t heads,
                                           const KvPageLayout& kv, float scale,
                                           const SparsePrefill& config);

// Whether the query row at `position` of a head whose pattern is `keep`
// attends to key block `block` (rows at dense_from and later: every block).
inline bool SparseRowAttends(const SparsePrefill& config, const uint8_t* keep, int32_t position,
                             int32_t dense_from, int32_t block) {
  if (position >= dense_from) return true;
  return keep[block] != 0 || block > position / SparsePrefill::kBlock - config.local_blocks;
}

}  // namespace restkv::kernels::cpu
