// Paged causal attention on the CPU (the contract is Backend::Attention in
// kernels/backend.h). One task per (sequence, query row, head), split over
// the pool by cost (visible keys); each task computes its scores into
// per-thread scratch, softmaxes them in fp32 and accumulates V — exact (not
// online) softmax, which is what the reference and the golden fixtures use.
// A task's operations do not depend on the other tasks in the call, so
// results are batch invariant (for every KV dtype). Pages are read in their
// stored dtype (kernels/kv_dtype.h): each K/V row is widened to f32 in
// registers (AVX-512 tiles) or into a one-row buffer (other head dims) as it
// is visited; there is no f32 copy of the cache.
#pragma once

#include "absl/types/span.h"
#include "common/thread_pool.h"
#include "kernels/backend.h"

namespace restkv::kernels::cpu {

void PagedAttention(ThreadPool& pool, const float* q, absl::Span<const AttentionSeq> seqs,
                    int32_t heads, const KvPageLayout& kv, float scale, float* out);

// Plain-loop oracle over contiguous K/V: k, v [kv_len][Hkv][d], q/out
// [num_q][H][d]; queries are the last num_q of kv_len tokens.
void ContiguousAttentionReference(const float* q, const float* k, const float* v, int32_t num_q,
                                  int32_t kv_len, int32_t heads, int32_t kv_heads, int32_t head_dim,
                                  float scale, float* out);

}  // namespace restkv::kernels::cpu
