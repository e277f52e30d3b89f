// KV eviction for one layer of a prompt: which cached tokens each KV head
// keeps after prefill (spec §1–§5). The caller (layer-by-layer prefill)
// gathers the layer's post-RoPE K/V and window queries into contiguous fp32,
// calls SelectTokens, and compacts the kept slots into the first pages of the
// layer; page release is shared code, not per policy.
//
// Legend: N = prompt tokens, H query heads, Hkv KV heads, G = H/Hkv, d = head
// dim, w = effective observation window (ScoringWindow), M = N - w.
// Query head h reads KV head h / G (Llama's repeat_kv grouping).
//
// Per policy (B = budget, K_l = KeptTokensForLayer - w):
//   full          everything
//   streamingllm  first sink_tokens + the last B - sink_tokens (positions only)
//   h2o           top K_l of h2o_scores (causal accumulated attention) + window
//   tova          top B of the last query's attention averaged over all H heads
//                 (same set for every KV head; no reserved window)
//   snapkv        top K_l of the summed window attention, pooled + window
//   pyramidkv     snapkv with the PyramidKV layer schedule
//   restkv        top K_l of the reconstruction indicator, temporally and
//                 spatially smoothed + window
// Scores are per query head (each with its own adaptive kernel); the G heads of
// a KV head are combined with config.gqa_reduce before its top-k. With
// adaptive=adakv the KV heads share the layer's Hkv*K_l candidates
// (adakv.h) instead of K_l each.
// NOTE(restkv): the AWS drift ranks each window row's top K_l keys, the
// layer's own candidate count; §2.4 says K = B - w, which is the same number
// except under the PyramidKV schedule.
//
// Cost per query head: w*N*d (window logits, BLAS), w*N exps, M*d^2 (the
// W_O-projected distances), O(w*N) drift and O(M) pooling/top-k. Transient
// memory: [w][N] + O(N) floats per worker thread plus [H][M] head scores.
#pragma once

#include <cstdint>
#include <vector>

#include "common/thread_pool.h"
#include "engine/eviction/policy_config.h"
#include "engine/eviction/wo_factor.h"

namespace restkv::engine {

// One layer's inputs, fp32, post-RoPE, contiguous per KV head. Pointers are
// borrowed for the duration of SelectTokens.
struct LayerScoringInput {
  int32_t num_tokens = 0;  // N
  int32_t num_heads = 0;   // H
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  // Rows of q_window: the queries of the last num_queries prompt tokens.
  // REQUIRES: num_queries >= ScoringWindow(config, N) (extra leading rows are
  // ignored).
  int32_t num_queries = 0;
  const float* q_window = nullptr;   // [num_queries][H][d]
  const float* k = nullptr;          // [Hkv][N][d]
  const float* v = nullptr;          // [Hkv][N][d]
  const float* wo_factor = nullptr;  // [H][d][d] from ComputeWoFactor; iff NeedsWoFactor
  const float* h2o_scores =
      nullptr;  // [H][N] column sums over all prompt queries; iff NeedsH2oScores
};

// Per KV head, the kept token indices in ascending order; each list has
// exactly KeptTokensForLayer(config, layer, num_layers, N) entries (all of
// 0..N-1 when the prompt is not evicted), except with adaptive=adakv, where
// head h keeps its own AdaKvCounts c_h candidates plus the window, at most
// KeptTokensForLayer entries (the lists differ in length). Deterministic: ties keep the lower
// index, and the result does not depend on the pool's thread count.
// REQUIRES: config.Validate() is OK; the inputs the policy needs are set
// (ScoringWindow, NeedsWoFactor, NeedsH2oScores); H % Hkv == 0.
// pool: may be null (runs on the calling thread).
std::vector<std::vector<int32_t>> SelectTokens(const KvPolicyConfig& config, int32_t layer,
                                               int32_t num_layers, const LayerScoringInput& in,
                                               ThreadPool* pool);

}  // namespace restkv::engine
