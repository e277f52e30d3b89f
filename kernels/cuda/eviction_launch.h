// Launchers of the eviction kernels (eviction_scores.cu, eviction_select.cu)
// behind LayerEvictionOps (kernels/layer_eviction.h; orchestrated by
// device_layer_eviction.cc). Each one is the device twin of a CPU reference
// function in engine/eviction/, named beside it, and is tested against it on
// the host emulation (emulation/eviction_kernels_test.cc).
//
// Legend: N = the layer's tokens, H = query heads, Hkv = KV heads, G = H/Hkv,
// d = head dim (1..kMaxEvictionHeadDim), w = window rows, M = N - w.
// "Head chunk": scoring buffers hold `num_heads` consecutive query heads
// starting at `head_begin` (local index hl = h - head_begin), so a long
// prompt's [H][w][N] probabilities need not exist at once.
//
// Every pointer is device memory. Every launcher enqueues on `stream`,
// returns the launch status (CheckLaunch), and returns InvalidArgument
// without launching for a shape it does not support.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/kv_dtype.h"

namespace restkv::kernels::cuda {

inline constexpr int32_t kMaxEvictionHeadDim = 256;

// A layer's pages as the kernels receive them: `pages` is a device array of
// ceil(num_tokens / block_size) page base addresses in the layout of
// kernels/kv_dtype.h for `dtype` (typed float* as across the Backend
// contract; kv_page_access.cuh is the one place kernels reach rows and
// scales). Scoring reads every dtype widened to f32; compaction moves stored
// bytes (and q8_0 scales) unchanged.
struct KvPages {
  float* const* pages = nullptr;
  int32_t num_tokens = 0;
  int32_t kv_heads = 0;
  int32_t block_size = 0;
  int32_t head_dim = 0;
  KvDtype dtype = KvDtype::kF32;

  [[nodiscard]] KvPageLayout layout() const { return {kv_heads, head_dim, block_size, dtype}; }
};

// Bytes LaunchGatherKept stages for `kept` tokens: [K rows | V rows]
// [Hkv][kept] of row_bytes, then (q8_0) [K scales | V scales][Hkv][kept] f32.
inline int64_t StagedKeptBytes(const KvPages& kv, int32_t kept) {
  const KvPageLayout l = kv.layout();
  return 2LL * kv.kv_heads * kept * (l.row_bytes() + (l.has_scales() ? 4 : 0));
}

// Twin of engine::WindowAttention, per query head: probs[hl][t][j] =
// softmax over j <= first_pos + t (and j < N) of scale * <q_t, k_j>, exactly
// 0 for the masked keys. Query row t of head h is q[t * q_row_stride + h * d].
// REQUIRES: heads % kv.kv_heads == 0; first_pos + num_rows <= N.
absl::Status LaunchWindowProbs(const float* q, int64_t q_row_stride, int32_t num_rows,
                               int32_t first_pos, const KvPages& kv, int32_t heads,
                               int32_t head_begin, int32_t num_heads, float scale, float* probs,
                               cudaStream_t stream);

// Twin of engine::AggregateRows per head: out[hl][j] = sum_t weights[t] *
// probs[hl][t][j] for j < num_cols (rows of probs are row_stride apart).
absl::Status LaunchAggregateRows(const float* probs, const float* weights, int32_t num_heads,
                                 int32_t num_rows, int64_t row_stride, int64_t num_cols, float* out,
                                 cudaStream_t stream);

// H2O's accumulation (engine/kv/layer_evictor.cc AccumulatedAttention):
// acc[hl][j] += sum_t probs[hl][t][j], rows added in order t = 0, 1, ...
// (reset: acc starts from 0 instead of its contents).
absl::Status LaunchAccumulateRows(const float* probs, int32_t num_heads, int32_t num_rows,
                                  int64_t num_cols, bool reset, float* acc, cudaStream_t stream);

// Twin of engine::CandidateOutput: obar[hl][i] = sum_{j<M} abar[hl][j] *
// v_j[i] (head h reads KV head h / G), accumulated in double.
absl::Status LaunchCandidateOutput(const float* abar, const KvPages& kv, int32_t heads,
                                   int32_t head_begin, int32_t num_heads, int64_t num_candidates,
                                   float* obar, cudaStream_t stream);

// Twin of engine::ProjectedDistances + AfterScores: scores[hl][j] =
// odds(abar[hl][j]) * ||R_h (obar_hl - v_j)||^tau, j < M, where R_h is
// wo_factor + h * d * d (upper-triangular, row-major) or the identity when
// wo_factor is null.
absl::Status LaunchReconstructionScores(const float* abar, const float* obar, const KvPages& kv,
                                        const float* wo_factor, int32_t heads, int32_t head_begin,
                                        int32_t num_heads, int64_t num_candidates, float tau,
                                        float* scores, cudaStream_t stream);

// Per row r < num_rows of probs [num_rows][n]: the sum of the positions of
// its top_k largest entries (ties to the lower index, NaN lowest), the
// quantity engine::WindowDrift averages. REQUIRES 1 <= top_k <= n.
absl::Status LaunchTopKPositionSums(const float* probs, int32_t num_rows, int64_t n, int64_t top_k,
                                    int64_t* sums, cudaStream_t stream);

// Width and shift of a pooling box (engine::AdaptiveKernel).
struct PoolShape {
  int32_t size;
  int32_t shift;
};

// Twin of engine::WindowDrift + AdaptiveKernelFor, per head: from the
// position sums [num_heads][num_rows] (rows oldest first; num_rows even),
// the drift of the early half against the late half and the head's box.
absl::Status LaunchAdaptiveShapes(const int64_t* sums, int32_t num_heads, int32_t num_rows,
                                  int64_t top_k, double beta, int32_t k_min, PoolShape* shapes,
                                  cudaStream_t stream);

enum class PoolKind : int32_t {
  kCopy,        // out = in
  kShiftedBox,  // engine::ShiftedReplicateBox with shapes[hl]
  kAvgZeroPad,  // engine::AvgPoolZeroPad, width `size`
  kMax,         // engine::MaxPool, width `size`
};

// out[hl][j] for j < num from in[hl][0..num) (rows num apart). `shapes`
// (device, [num_heads]) only for kShiftedBox; `size` odd for the others.
absl::Status LaunchPool(PoolKind kind, const float* in, int32_t num_heads, int64_t num,
                        const PoolShape* shapes, int32_t size, float* out, cudaStream_t stream);

// Twin of engine::ReduceGroupScores for every group: out[g][j] = mean (or
// max) over h < group of head_scores[(g * group + h) * head_stride + j],
// j < num; out rows are num apart.
absl::Status LaunchReduceGroups(const float* head_scores, int32_t num_groups, int32_t group,
                                int64_t head_stride, int64_t num, bool use_max, float* out,
                                cudaStream_t stream);

// Twin of engine::KeepTopCandidates per row r < num_rows of scores
// (row_stride apart): keep[r][0..k) = the ascending indices of the k largest
// scores[r][0..num) (ties to the lower index, NaN lowest, -0 == +0; all of
// them when k >= num), then keep[r][k + i] = num + i for i < window. Rows of
// keep are min(k, num) + window apart. REQUIRES k >= 1.
absl::Status LaunchTopKIndices(const float* scores, int32_t num_rows, int64_t row_stride,
                               int64_t num, int32_t k, int32_t window, int32_t* keep,
                               cudaStream_t stream);

// Compaction, step 1: `staged` (StagedKeptBytes) = the stored rows (and
// scales) of token keep[h * keep_head_stride + i] for slot i of head h
// (keep_head_stride 0: one list for every head). Every kept index must be < N.
absl::Status LaunchGatherKept(const KvPages& kv, const int32_t* keep, int64_t keep_head_stride,
                              int32_t kept, void* staged, cudaStream_t stream);
// Step 2: slot i of head h <- staged row (h, i), for i < kept <= N. Two
// steps because compaction is in place: a slot may still be read for a
// later slot when it is written.
absl::Status LaunchScatterKept(const void* staged, const KvPages& kv, int32_t kept,
                               cudaStream_t stream);

}  // namespace restkv::kernels::cuda
