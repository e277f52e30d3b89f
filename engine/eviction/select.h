// Selection building blocks of the KV eviction policies (spec §1, §2.5,
// §3, §5): per-head top-k, the grouped-query reduction, the kept-set rules and
// the per-layer budget schedules.
//
// Legend: N = prompt tokens, w = observation window (always kept), M = N - w
// candidates, B = budget (tokens kept per layer per KV head incl. the window),
// K = candidates kept, G = query heads per KV head, L = layers.
//
// Kept sets are token indices in ascending order. Ties between equal scores go
// to the lower index; NaN ranks below every number. Pure functions.
#pragma once

#include <cstdint>
#include <vector>

namespace restkv::engine {

// How the G query-head scores of one KV head are combined (§1 GQA).
enum class GqaReduce {
  kMean,  // S_g[j] = (1/G) sum_h S_h[j] (default)
  kMax,   // S_g[j] = max_h S_h[j]
};

// The observation window actually used for budget B and configured window w:
// w if B > w; otherwise the largest even number <= B/2, and B itself when
// B < 4 (keep only the last B tokens, no candidates).
// NOTE(restkv): the release asserts B > w; this fallback is ours (§1).
// REQUIRES: budget >= 1, window >= 1.
int32_t EffectiveWindow(int32_t budget, int32_t window);

// Writes the `k` indices of the largest scores[0..num) to out in ascending
// order (ties to the lower index). k >= num takes everything. O(num) via
// nth_element on a copy held in scratch.
void TopKIndices(const float* scores, int64_t num, int64_t k, std::vector<float>* scratch,
                 std::vector<int32_t>* out);

// out[j] = reduce_{h < group} head_scores[h * head_stride + j], j < num.
void ReduceGroupScores(GqaReduce mode, const float* head_scores, int32_t group, int64_t head_stride,
                       int64_t num, float* out);

// The top `keep_candidates` of scores[0..M) (M = num_tokens - window) followed
// by the window M..N-1: keep_candidates + window ascending indices.
std::vector<int32_t> KeepTopCandidates(const float* scores, int32_t num_tokens, int32_t window,
                                       int32_t keep_candidates, std::vector<float>* scratch);

// StreamingLLM (§5, §7.5): the first s sink tokens and the last B - s, where
// s = sink_tokens if B > sink_tokens, else B/2 (ours). Everything if B >= N.
std::vector<int32_t> StreamingLlmKeep(int32_t num_tokens, int32_t budget, int32_t sink_tokens);

// PyramidKV candidates kept at `layer` (§3, pyr_beta = 20):
//   min_c = (B-w)/20, max_c = 2(B-w) - min_c, clamped to max_c <= N-w (then
//   min_c = 2(B-w) - max_c); step = (max_c - min_c)/(L-1); K_l = max_c - l*step.
// With one layer the schedule degenerates; K = B - w (ours).
// REQUIRES: num_tokens > budget > window >= 1, 0 <= layer < num_layers.
int32_t PyramidCandidates(int32_t budget, int32_t window, int32_t num_tokens, int32_t layer,
                          int32_t num_layers);

}  // namespace restkv::engine
