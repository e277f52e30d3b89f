// LayerEvictionOps: KV eviction of one (sequence, layer) where the pages
// live — score the layer's cached tokens, pick each KV head's kept tokens,
// and compact them into the first pages, without the pages leaving backend
// memory. A Backend that has such kernels returns them from
// Backend::layer_eviction() (the CUDA backend; its kernels also run on the
// host emulation); the CPU backend has none, and the engine's evictor then
// runs the reference code of engine/eviction/ on the pages directly.
//
// The operations are expressed in kernel terms (what to compute), not in
// policy terms: the engine (engine/kv/eviction_plan.h) turns a policy into an
// EvictionPlan with the same functions the CPU reference uses, so the two
// paths share every budget, window and weight decision.
//
// Legend: N = cached tokens of the layer (the whole prompt), H = query heads,
// Hkv = KV heads, G = H / Hkv, d = head dim, w = plan.window, M = N - w
// candidates, K = plan.keep candidates kept.
//
// Per score kind, for every query head h (reading KV head h / G):
//   kPositions            no scores: every KV head keeps plan.positions
//   kLastQueryMean        TOVA: the last query's causal softmax row over all
//                         N keys, averaged over all H heads; top K of N
//   kAccumulatedAttention H2O: sum over every query t of its causal softmax
//                         row; top K of the first M
//   kWindowSum            SnapKV: sum over the w window rows; pooled; top K
//   kReconstruction       ReST-KV (metric "after"): abar = sum_t c_t A[t, j]
//                         (c = plan.row_weights), obar = sum_{j<M} abar_j v_j,
//                         s_j = odds(abar_j) * ||R_h (obar - v_j)||^tau;
//                         pooled; top K
// then the G head scores of a KV head are reduced (mean or max), the top K
// candidates kept (ties to the lower index, NaN lowest, -0 == +0) followed by
// the window M..N-1, so every KV head keeps K + w ascending positions (TOVA:
// K, the same set for all heads).
//
// Head-wise counts (AdaKV, plan.head_counts set; scored plans only): the
// reduced scores [Hkv][M] are handed to the host function head_counts, whose
// c_h (<= head_cap) replaces K for KV head h: head h keeps its top c_h
// candidates and the window, c_h + w slots. The layer then holds the longest
// head's count; a shorter head's slots past its own are padding (unspecified
// contents that attention skips; the engine records the lengths).
//
// Thread safety: as the backend (one caller thread).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "kernels/kv_dtype.h"

namespace restkv::kernels {

enum class EvictionScore {
  kPositions,
  kLastQueryMean,
  kAccumulatedAttention,
  kWindowSum,
  kReconstruction,
};

enum class EvictionPooling {
  kNone,
  kAdaptive,    // ReST-KV AWS: per-head width/shift from the window's drift
  kAvgZeroPad,  // centred width kernel_size, zero padding counted
  kMax,         // centred width kernel_size, max over in-range entries
};

struct EvictionPlan {
  EvictionScore score = EvictionScore::kPositions;
  int32_t window = 0;  // w: trailing tokens every head keeps (0 for kLastQueryMean)
  int32_t keep = 0;    // K: top-scoring candidates kept per KV head
  // kPositions: the kept tokens, ascending, the same for every KV head.
  std::vector<int32_t> positions;
  // kWindowSum / kReconstruction: [w] weight of each window row (oldest
  // first); all 1 for kWindowSum.
  std::vector<float> row_weights;
  float tau = 1.0f;  // kReconstruction distance exponent
  EvictionPooling pooling = EvictionPooling::kNone;
  int32_t kernel_size = 1;  // odd; the adaptive minimum width
  double beta = 2000.0;     // adaptive: drift tokens per widening step
  bool reduce_max = false;  // GQA reduction: max instead of mean
  // AdaKV: each KV head's candidate count from the reduced scores
  // (host memory, [kv_heads][m]); every count in [0, head_cap]. `keep` stays
  // the uniform count (adaptive pooling's drift ranks each row's top keep).
  using HeadCounts =
      std::function<std::vector<int32_t>(const float* reduced, int32_t kv_heads, int64_t m)>;
  HeadCounts head_counts;
  int32_t head_cap = 0;

  // The most slots a KV head keeps: positions.size() for kPositions, keep
  // for kLastQueryMean, head_cap + window with head_counts (each head's own
  // count is LayerEvictionOps::LastLengths), keep + window otherwise.
  [[nodiscard]] int32_t KeptTokens() const {
    if (score == EvictionScore::kPositions) return static_cast<int32_t>(positions.size());
    if (score == EvictionScore::kLastQueryMean) return keep;
    return (head_counts ? head_cap : keep) + window;
  }
};

// One layer of one sequence, as the forward pass leaves it.
struct EvictionLayerView {
  int32_t num_tokens = 0;  // N, all cached in `pages`
  int32_t num_heads = 0;   // H
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 0;
  // HOST array of the layer's ceil(N / block_size) page pointers (backend
  // memory), in the layout of kernels/kv_dtype.h for `dtype`.
  float* const* pages = nullptr;
  KvDtype dtype = KvDtype::kF32;
  // HOST [num_queries][H][d], the post-RoPE queries of the last num_queries
  // tokens (the model captures them on the host). REQUIRES num_queries >= w
  // (>= 1 for kLastQueryMean).
  const float* q_window = nullptr;
  int32_t num_queries = 0;
  // HOST [N][H][d], every query; kAccumulatedAttention only.
  const float* q_all = nullptr;
  // Backend memory [H][d][d], the upper-triangular W_O factors
  // (engine/eviction/wo_factor.h), or null for plain Euclidean distances.
  const float* wo_factor = nullptr;
};

class LayerEvictionOps {
 public:
  virtual ~LayerEvictionOps() = default;

  // Scores and selects per the plan, then compacts in place: afterwards slot
  // i of KV head h holds (K and V of) head h's i-th kept token, for
  // i < LastLengths()[h] (plan.KeptTokens() without head_counts); slots past
  // that are unspecified. Releasing the
  // emptied pages is the caller's (the block tables are the engine's).
  // Errors: InvalidArgument for a shape or plan the kernels do not support
  // (head_dim outside 1..256, H not a multiple of Hkv, a keep/window that
  // does not fit N, missing inputs); ResourceExhausted when scratch memory
  // cannot be allocated; Internal for a device failure. On error the pages
  // are unspecified (the request must fail).
  virtual absl::Status EvictLayer(const EvictionPlan& plan, const EvictionLayerView& layer) = 0;

  // The kept positions of the last successful EvictLayer, [Hkv][kept], to
  // host memory (an observation for tools and tests; a small copy).
  virtual absl::Status LastKept(std::vector<std::vector<int32_t>>* kept) = 0;

  // Slots each KV head holds after the last successful EvictLayer, [Hkv].
  [[nodiscard]] virtual const std::vector<int32_t>& LastLengths() const = 0;
};

}  // namespace restkv::kernels
