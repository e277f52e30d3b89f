// Spatial smoothing of per-candidate scores (spec §2.4): ReST-KV's
// adaptive window (AWS: a box whose width and shift follow the attention
// drift of the observation window) and the SnapKV-style avg/max pools.
//
// Legend: M = candidate count, w = window rows, N = prompt tokens, k = box
// width (odd), sigma = shift of the box centre in tokens.
//
// Every pool is O(M) (running sums / a monotone queue), independent of k, and
// writes a separate output buffer. Pure functions, thread-compatible.
#pragma once

#include <cstdint>
#include <vector>

namespace restkv::engine {

enum class PoolingMode {
  kDefault,   // the policy's own default: adaptive for restkv, avgpool for snapkv/pyramidkv
  kAdaptive,  // AWS: shifted replicate-padded box, width/shift from the drift
  kAvg,       // centred width-k_min box, zero padding counted (divide by k at edges)
  kMax,       // centred width-k_min max over in-range entries
  kNone,      // no smoothing
};

// Width and shift of the AWS box.
struct AdaptiveKernel {
  int32_t size = 0;   // k, odd
  int32_t shift = 0;  // sigma
  bool operator==(const AdaptiveKernel&) const = default;
};

// Reusable buffers of WindowDrift (one per thread).
struct DriftScratch {
  std::vector<uint32_t> all_keys;   // [N] order-preserving keys of one row
  std::vector<uint32_t> histogram;  // radix bins of one row
  std::vector<uint32_t> keys;       // keys of the threshold bin
  std::vector<uint32_t> select;     // their copy, reordered by nth_element
  std::vector<int32_t> positions;   // their positions, ascending
};

// Attention drift Delta (§2.4 step 1): mean position of each row's top_k
// largest probabilities over the early half of the window rows minus that of
// the late half. probs: [num_window][num_tokens] (masked keys hold 0); ties at
// the k-th value go to the lower index; NaN ranks lowest. Each row's top-k is
// a two-pass radix select, O(num_tokens), no sort.
// REQUIRES: num_window even and >= 2; 1 <= top_k <= num_tokens.
double WindowDrift(const float* probs, int32_t num_window, int32_t num_tokens, int32_t top_k,
                   DriftScratch* scratch);

// k = max(k_min, 2*floor(|Delta|/beta) + 1);
// sigma = floor(Delta/beta) for Delta > 0, floor(Delta/beta) + 1 otherwise.
// NOTE(restkv): the release's quirks are kept on purpose (§8.3):
// Delta == 0 gives sigma = +1, Delta = -m*beta exactly gives -(m-1).
// REQUIRES: beta > 0, k_min odd and >= 1.
AdaptiveKernel AdaptiveKernelFor(double drift, double beta, int32_t k_min);

// out[j] = (1/k) * sum_{i=j+shift-k/2}^{j+shift+k/2} in[clamp(i, 0, M-1)].
// REQUIRES: size odd >= 1, num >= 1; in != out.
void ShiftedReplicateBox(const float* in, int64_t num, int32_t size, int32_t shift, float* out);

// out[j] = (1/k) * sum_{|i-j| <= k/2, 0 <= i < M} in[i]  (zeros outside count).
void AvgPoolZeroPad(const float* in, int64_t num, int32_t size, float* out);

// out[j] = max_{|i-j| <= k/2, 0 <= i < M} in[i].
void MaxPool(const float* in, int64_t num, int32_t size, float* out);

}  // namespace restkv::engine
