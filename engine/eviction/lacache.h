// LaCache's ladder-shaped KV pattern applied once, at the end of prefill.
//
// LaCache (Shi et al., ICML 2025) keeps, in every layer, the first `sink`
// tokens, the most recent tokens, and a "ladder" over the older middle: the
// middle is cut into groups of `group` consecutive tokens, and layer l keeps
// `per_layer` consecutive tokens of each group starting at offset
// l mod (group - per_layer + 1). Successive layers therefore keep shifted
// tokens, so the layers together cover far more of the prompt than any one
// of them holds (a token kept in one layer is missing from its neighbours).
// The group shape comes from the span S (how many layers one ladder step
// spans) and the overlap O between consecutive steps, for L layers:
//   group     = 1 + max(0, ceil((L - S) / (S - O)))
//   per_layer = min(ceil(S / (S - O)), group)
// Each group saves `group - per_layer` tokens per layer.
//
// LaCache's iterative compaction (re-laddering the already compacted cache
// when it fills again) is applied here as repeated passes over the layer's
// kept list, each starting again after the sinks, until the list fits the
// budget: older tokens are compacted more often, as in the paper. If a pass
// cannot save anything (the middle holds less than one group), the list is
// cut to the sinks and its last B - sink entries (the StreamingLLM rule).
//
// The kept count depends on (N, B, L, S, O, sink, recent) only, never on the
// layer, so every layer and KV head keeps the same number of tokens and the
// page arithmetic is exact. Pure functions.
#pragma once

#include <cstdint>
#include <vector>

namespace restkv::engine {

struct LadderShape {
  int32_t sink = 4;     // first tokens always kept
  int32_t recent = 32;  // last tokens never laddered
  int32_t span = 16;    // S: layers one ladder step spans
  int32_t overlap = 0;  // O: layers shared by consecutive steps, 0 <= O < S
};

// group and per_layer for `num_layers` layers (see the header comment).
// REQUIRES: 0 <= overlap < span, num_layers >= 1.
int32_t LadderGroup(const LadderShape& shape, int32_t num_layers);
int32_t LadderPerLayer(const LadderShape& shape, int32_t num_layers);

// Ascending kept positions of `layer` for a prompt of num_tokens under
// budget B (everything when N <= B). The sink and recent counts are clamped
// so that sink + recent <= B (sink = B/2 when B <= sink, as StreamingLLM).
// REQUIRES: budget >= 1, 0 <= layer < num_layers, shape valid.
std::vector<int32_t> LaCacheKeep(int32_t num_tokens, int32_t budget, const LadderShape& shape,
                                 int32_t layer, int32_t num_layers);

// LaCacheKeep(...).size() without building the lists (the same for every
// layer); <= budget.
int32_t LaCacheKeptCount(int32_t num_tokens, int32_t budget, const LadderShape& shape,
                         int32_t num_layers);

}  // namespace restkv::engine
