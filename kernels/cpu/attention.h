// Paged causal attention on the CPU (the contract is Backend::Attention in
// kernels/backend.h). One task per (sequence, tile of up to 16 query rows,
// KV head), covering that KV head's query heads, split over the pool by cost
// (visible keys). For head dims 32, 64, 96 and 128 a task runs the tile of
// attention_tile.h: an online softmax over key blocks of 64, K/V rows widened
// to f32 in registers from their stored dtype (kernels/kv_dtype.h), on
// AVX-512 or, in builds without it (x86-64-v3), AVX2 (attention_vec.h).
// Other head dims, and heads with padding slots (per-head lengths), take a
// generic path: an exact softmax per row over a one-row f32 buffer. There is
// no f32 copy of the cache. A row's operations do not depend on the other
// rows or tasks in the call, so results are batch invariant (for every KV
// dtype), and a row computed alone equals the same row in a prefill chunk.
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
