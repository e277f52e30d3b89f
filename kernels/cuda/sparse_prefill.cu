// The block pattern of sparse prefill on the GPU (contract: launch.h,
// SparsePatternLaunch; CPU reference: kernels/cpu/sparse_prefill.cc). The
// attention kernel (paged_attention.cu) then masks, and skips, the key tiles
// a row's pattern leaves out.
//
// Three kernels, one launch each:
//   ZeroKernel:  clears the mass scratch.
//   MassKernel:  one block per (estimate row, query head). Pass 1: each
//                thread keeps an online (max, sum) of exp(q·k · scale) over
//                its keys t = tid, tid + 128, ...; the block merges them
//                (block_reduce.cuh).
//                Pass 2: recomputes each score, normalises it, and a warp
//                (32 consecutive keys, inside one 64-key block) sums its
//                probabilities with shuffles and adds them with one atomic.
//   SelectKernel: one block per query head. Block b is kept when fewer than
//                top_blocks blocks have more mass (ties to the lower block,
//                as the CPU's partial_sort), or b < sink_blocks. Ranking is
//                O(blocks²) per head: 2048 blocks (128k keys) is 4M
//                comparisons, negligible beside the prefill's attention.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/kernel_launch.h"
#include "kernels/cuda/kv_page_access.cuh"
#include "kernels/cuda/launch.h"

namespace restkv::kernels::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxHeadDim = 128;

__global__ void __launch_bounds__(kThreads) ZeroKernel(float* p, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i < n) p[i] = 0.0f;
}

__global__ void __launch_bounds__(kThreads)
    MassKernel(SparsePatternLaunch a, KvPages kv, int32_t first_row, int32_t blocks) {
  __shared__ float q_s[kMaxHeadDim];
  __shared__ float warp_vals[kMaxWarps];
  const int32_t tid = static_cast<int32_t>(threadIdx.x);
  const int32_t j = first_row + static_cast<int32_t>(blockIdx.x);
  const int32_t h = static_cast<int32_t>(blockIdx.y);
  const int32_t g = h / (a.heads / kv.kv_heads);
  const int32_t d = kv.head_dim;
  const int32_t pos = a.seq.kv_len - a.seq.num_q + j;  // the row sees keys 0..pos
  const float* qv = a.q + (static_cast<int64_t>(a.seq.q_begin + j) * a.heads + h) * d;
  for (int32_t i = tid; i < d; i += kThreads) q_s[i] = qv[i];
  __syncthreads();
  auto score = [&](int32_t t) {
    const RowReader k = KRow(kv, t, g);
    float dot = 0.0f;
    for (int32_t i = 0; i < d; ++i) dot += q_s[i] * k[i];
    return dot * a.scale;
  };
  float m = -INFINITY, l = 0.0f;
  for (int32_t t = tid; t <= pos; t += kThreads) {
    const float s = score(t);
    const float nm = fmaxf(m, s);
    l = l * expf(m - nm) + expf(s - nm);
    m = nm;
  }
  const float row_max = BlockMax(m, warp_vals);
  const float inv_sum = 1.0f / BlockSum(m == -INFINITY ? 0.0f : l * expf(m - row_max), warp_vals);
  // The loop bound is the block's, so every lane of a warp shuffles together.
  for (int32_t base = 0; base <= pos; base += kThreads) {
    const int32_t t = base + tid;
    float p = t <= pos ? expf(score(t) - row_max) * inv_sum : 0.0f;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) p += __shfl_xor_sync(0xffffffffu, p, off);
    const int32_t first_key = base + (tid / 32) * 32;
    if (tid % 32 == 0 && first_key <= pos) {
      atomicAdd(&a.mass[static_cast<int64_t>(h) * blocks + first_key / kSparseBlock], p);
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    SelectKernel(SparsePatternLaunch a, int32_t blocks, int32_t top) {
  const int32_t h = static_cast<int32_t>(blockIdx.x);
  const float* mass = a.mass + static_cast<int64_t>(h) * blocks;
  uint8_t* keep = a.keep + static_cast<int64_t>(h) * blocks;
  for (int32_t b = static_cast<int32_t>(threadIdx.x); b < blocks; b += kThreads) {
    const float mb = mass[b];
    int32_t rank = 0;
    for (int32_t c = 0; c < blocks; ++c) rank += mass[c] > mb || (mass[c] == mb && c < b);
    keep[b] = (rank < top || b < a.sink_blocks) ? 1 : 0;
  }
}

}  // namespace

absl::Status LaunchSparsePattern(const SparsePatternLaunch& a, cudaStream_t stream) {
  const DeviceKvLayout& l = a.kv;
  if (l.head_dim <= 0 || l.head_dim > kMaxHeadDim || l.kv_heads <= 0 || a.heads % l.kv_heads != 0) {
    return absl::InvalidArgumentError("sparse pattern: head_dim above 128 or bad head grouping");
  }
  if (a.seq.num_q <= 0 || a.seq.kv_len < a.seq.num_q) {
    return absl::InvalidArgumentError("sparse pattern: no queries, or more queries than keys");
  }
  const int32_t blocks = (a.seq.kv_len + kSparseBlock - 1) / kSparseBlock;
  const int32_t rows = std::min(std::max(a.estimate_rows, 1), a.seq.num_q);
  const int32_t top = std::min(std::max(a.top_blocks, 0), blocks);
  const int64_t n = static_cast<int64_t>(a.heads) * blocks;
  const KvPages kv{
      a.page_table + a.seq.page_begin, a.seq.kv_len, l.kv_heads, l.block_size, l.head_dim, l.dtype};
  RESTKV_LAUNCH(ZeroKernel, dim3(static_cast<unsigned>((n + kThreads - 1) / kThreads)), kThreads, 0,
                stream)
  (a.mass, n);
  if (absl::Status s = CheckLaunch("ZeroKernel"); !s.ok()) return s;
  RESTKV_LAUNCH(MassKernel, dim3(static_cast<unsigned>(rows), static_cast<unsigned>(a.heads)),
                kThreads, 0, stream)
  (a, kv, a.seq.num_q - rows, blocks);
  if (absl::Status s = CheckLaunch("MassKernel"); !s.ok()) return s;
  RESTKV_LAUNCH(SelectKernel, dim3(static_cast<unsigned>(a.heads)), kThreads, 0, stream)
  (a, blocks, top);
  return CheckLaunch("SelectKernel");
}

}  // namespace restkv::kernels::cuda
