// Eviction selection and compaction kernels (contracts in
// eviction_launch.h): per-row top-k with the CPU's tie rule, and the
// two-step in-place gather of the kept tokens into the first slots of the
// layer's pages.
#include <cstdint>

#include "absl/strings/str_format.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/eviction_launch.h"
#include "kernels/cuda/kernel_launch.h"
#include "kernels/cuda/kv_page_access.cuh"

namespace restkv::kernels::cuda {
namespace {

constexpr int kSelectThreads = 128;
constexpr int kElementThreads = 256;

// Threads for `work` items, a multiple of 32 in [32, max_threads]: small
// problems get small blocks (cheaper on the device, and much cheaper on the
// host emulation, which starts an OS thread per CUDA thread).
int ThreadsFor(int64_t work, int max_threads) {
  const int64_t t = (work + 31) / 32 * 32;
  return static_cast<int>(t < 32 ? 32 : (t > max_threads ? max_threads : t));
}

unsigned GridFor(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 ? 65535 : blocks));
}

__device__ __forceinline__ int64_t GlobalThread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t GridStride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// One block per row. Selected indices are written in index order: a block
// scan of the "taken" flags gives each its output position.
__global__ void __launch_bounds__(kSelectThreads)
    TopKIndicesKernel(const float* __restrict__ scores, int64_t row_stride, int64_t num, int32_t k,
                      int32_t window, int32_t* __restrict__ keep) {
  __shared__ unsigned hist[256];
  __shared__ int64_t pick[2];
  __shared__ int counts[kMaxWarps];
  const float* row = scores + static_cast<int64_t>(blockIdx.x) * row_stride;
  const int64_t take_k = k < num ? k : num;
  int32_t* out = keep + static_cast<int64_t>(blockIdx.x) * (take_k + window);
  for (int64_t i = threadIdx.x; i < window; i += blockDim.x)
    out[take_k + i] = static_cast<int32_t>(num + i);
  if (take_k == num) {  // everything (engine::TopKIndices does the same)
    for (int64_t j = threadIdx.x; j < num; j += blockDim.x) out[j] = static_cast<int32_t>(j);
    return;
  }
  const auto key_of = [row](int64_t j) { return SelectionKey(row[j]); };
  const KthKey kth = BlockKthLargest(key_of, num, take_k, hist, pick);
  int64_t equal_before = 0, taken_before = 0;
  for (int64_t base = 0; base < num; base += blockDim.x) {
    const int64_t j = base + threadIdx.x;
    const uint32_t key = j < num ? key_of(j) : 0u;
    const bool equal = j < num && key == kth.key;
    int equal_total = 0, taken_total = 0;
    const int equal_rank = BlockExclusiveCount(equal, counts, &equal_total);
    const bool take = j < num && (key > kth.key || (equal && equal_before + equal_rank < kth.need));
    const int rank = BlockExclusiveCount(take, counts, &taken_total);
    if (take) out[taken_before + rank] = static_cast<int32_t>(j);
    equal_before += equal_total;
    taken_before += taken_total;
  }
}

__global__ void GatherKeptKernel(KvPages kv, const int32_t* __restrict__ keep,
                                 int64_t keep_head_stride, int32_t kept,
                                 KvElement* __restrict__ staged) {
  const int32_t d = kv.head_dim;
  const int64_t per_head = static_cast<int64_t>(kept) * d;
  const int64_t total = kv.kv_heads * per_head;
  for (int64_t e = GlobalThread(); e < total; e += GridStride()) {
    const int32_t h = static_cast<int32_t>(e / per_head);
    const int32_t i = static_cast<int32_t>(e % per_head / d);
    const int32_t c = static_cast<int32_t>(e % d);
    const int32_t t = keep[h * keep_head_stride + i];
    staged[e] = KRow(kv, t, h)[c];
    staged[total + e] = VRow(kv, t, h)[c];
  }
}

__global__ void ScatterKeptKernel(const KvElement* __restrict__ staged, KvPages kv, int32_t kept) {
  const int32_t d = kv.head_dim;
  const int64_t per_head = static_cast<int64_t>(kept) * d;
  const int64_t total = kv.kv_heads * per_head;
  for (int64_t e = GlobalThread(); e < total; e += GridStride()) {
    const int32_t h = static_cast<int32_t>(e / per_head);
    const int32_t i = static_cast<int32_t>(e % per_head / d);
    const int32_t c = static_cast<int32_t>(e % d);
    KRowMut(kv, i, h)[c] = staged[e];
    VRowMut(kv, i, h)[c] = staged[total + e];
  }
}

absl::Status CheckCompaction(const KvPages& kv, int32_t kept) {
  if (kv.pages == nullptr || kv.kv_heads < 1 || kv.block_size < 1 || kv.head_dim < 1 ||
      kv.head_dim > kMaxEvictionHeadDim || kept < 1 || kept > kv.num_tokens) {
    return absl::InvalidArgumentError(
        absl::StrFormat("compaction: %d kept of %d tokens (kv_heads %d, block %d, head_dim %d)",
                        kept, kv.num_tokens, kv.kv_heads, kv.block_size, kv.head_dim));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LaunchTopKIndices(const float* scores, int32_t num_rows, int64_t row_stride,
                               int64_t num, int32_t k, int32_t window, int32_t* keep,
                               cudaStream_t stream) {
  if (num_rows < 1 || num_rows > 65535 || num < 1 || row_stride < num || k < 1 || window < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "LaunchTopKIndices: top %d of %d (+%d window) in %d rows", k, num, window, num_rows));
  }
  RESTKV_LAUNCH(TopKIndicesKernel, static_cast<unsigned>(num_rows), ThreadsFor(num, kSelectThreads),
                0, stream)
  (scores, row_stride, num, k, window, keep);
  return CheckLaunch("TopKIndicesKernel");
}

absl::Status LaunchGatherKept(const KvPages& kv, const int32_t* keep, int64_t keep_head_stride,
                              int32_t kept, KvElement* staged, cudaStream_t stream) {
  if (absl::Status st = CheckCompaction(kv, kept); !st.ok()) return st;
  const int64_t total = static_cast<int64_t>(kv.kv_heads) * kept * kv.head_dim;
  const int threads = ThreadsFor(total, kElementThreads);
  RESTKV_LAUNCH(GatherKeptKernel, GridFor(total, threads), threads, 0, stream)
  (kv, keep, keep_head_stride, kept, staged);
  return CheckLaunch("GatherKeptKernel");
}

absl::Status LaunchScatterKept(const KvElement* staged, const KvPages& kv, int32_t kept,
                               cudaStream_t stream) {
  if (absl::Status st = CheckCompaction(kv, kept); !st.ok()) return st;
  const int64_t total = static_cast<int64_t>(kv.kv_heads) * kept * kv.head_dim;
  const int threads = ThreadsFor(total, kElementThreads);
  RESTKV_LAUNCH(ScatterKeptKernel, GridFor(total, threads), threads, 0, stream)
  (staged, kv, kept);
  return CheckLaunch("ScatterKeptKernel");
}

}  // namespace restkv::kernels::cuda
