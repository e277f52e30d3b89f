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

// Compaction moves stored rows in units of U (4, 2 or 1 bytes: the widest
// that divides a row, so rows stay aligned) and, for q8_0, the rows' scales.
// Staged layout (StagedKeptBytes): [K | V][Hkv][kept][row], then
// [K | V][Hkv][kept] scales.
template <typename U>
__global__ void GatherKeptKernel(KvPages kv, const int32_t* __restrict__ keep,
                                 int64_t keep_head_stride, int32_t kept,
                                 uint8_t* __restrict__ staged) {
  const int32_t units = static_cast<int32_t>(RowBytes(kv) / sizeof(U));
  const int64_t per_head = static_cast<int64_t>(kept) * units;
  const int64_t total = kv.kv_heads * per_head;
  U* rows = reinterpret_cast<U*>(staged);
  for (int64_t e = GlobalThread(); e < total; e += GridStride()) {
    const int32_t h = static_cast<int32_t>(e / per_head);
    const int32_t i = static_cast<int32_t>(e % per_head / units);
    const int32_t c = static_cast<int32_t>(e % units);
    const int32_t t = keep[h * keep_head_stride + i];
    rows[e] = reinterpret_cast<const U*>(RowBytesAt(kv, t, h, false))[c];
    rows[total + e] = reinterpret_cast<const U*>(RowBytesAt(kv, t, h, true))[c];
  }
  if (kv.dtype != KvDtype::kQ8_0) return;
  const int64_t num_rows = static_cast<int64_t>(kv.kv_heads) * kept;
  float* scales = reinterpret_cast<float*>(staged + 2 * total * sizeof(U));
  for (int64_t e = GlobalThread(); e < num_rows; e += GridStride()) {
    const int32_t h = static_cast<int32_t>(e / kept), i = static_cast<int32_t>(e % kept);
    const int32_t t = keep[h * keep_head_stride + i];
    scales[e] = *ScaleAt(kv, t, h, false);
    scales[num_rows + e] = *ScaleAt(kv, t, h, true);
  }
}

template <typename U>
__global__ void ScatterKeptKernel(const uint8_t* __restrict__ staged, KvPages kv, int32_t kept) {
  const int32_t units = static_cast<int32_t>(RowBytes(kv) / sizeof(U));
  const int64_t per_head = static_cast<int64_t>(kept) * units;
  const int64_t total = kv.kv_heads * per_head;
  const U* rows = reinterpret_cast<const U*>(staged);
  for (int64_t e = GlobalThread(); e < total; e += GridStride()) {
    const int32_t h = static_cast<int32_t>(e / per_head);
    const int32_t i = static_cast<int32_t>(e % per_head / units);
    const int32_t c = static_cast<int32_t>(e % units);
    reinterpret_cast<U*>(RowBytesAt(kv, i, h, false))[c] = rows[e];
    reinterpret_cast<U*>(RowBytesAt(kv, i, h, true))[c] = rows[total + e];
  }
  if (kv.dtype != KvDtype::kQ8_0) return;
  const int64_t num_rows = static_cast<int64_t>(kv.kv_heads) * kept;
  const float* scales = reinterpret_cast<const float*>(staged + 2 * total * sizeof(U));
  for (int64_t e = GlobalThread(); e < num_rows; e += GridStride()) {
    const int32_t h = static_cast<int32_t>(e / kept), i = static_cast<int32_t>(e % kept);
    *ScaleAt(kv, i, h, false) = scales[e];
    *ScaleAt(kv, i, h, true) = scales[num_rows + e];
  }
}

// The copy unit of a row: 4, 2 or 1 bytes.
int32_t CopyUnit(const KvPages& kv) {
  const int64_t row = kv.layout().row_bytes();
  return row % 4 == 0 ? 4 : row % 2 == 0 ? 2 : 1;
}

absl::Status CheckCompaction(const KvPages& kv, int32_t kept) {
  if (kv.pages == nullptr || kv.kv_heads < 1 || kv.block_size < 1 || kv.head_dim < 1 ||
      kv.head_dim > kMaxEvictionHeadDim || kept < 1 || kept > kv.num_tokens ||
      static_cast<int32_t>(kv.dtype) < 0 || static_cast<int32_t>(kv.dtype) > 3) {
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
                              int32_t kept, void* staged, cudaStream_t stream) {
  if (absl::Status st = CheckCompaction(kv, kept); !st.ok()) return st;
  const int32_t unit = CopyUnit(kv);
  const int64_t total = static_cast<int64_t>(kv.kv_heads) * kept * kv.layout().row_bytes() / unit;
  const int threads = ThreadsFor(total, kElementThreads);
  const unsigned grid = GridFor(total, threads);
  uint8_t* out = static_cast<uint8_t*>(staged);
  if (unit == 4) {
    RESTKV_LAUNCH(GatherKeptKernel<uint32_t>, grid, threads, 0, stream)
    (kv, keep, keep_head_stride, kept, out);
  } else if (unit == 2) {
    RESTKV_LAUNCH(GatherKeptKernel<uint16_t>, grid, threads, 0, stream)
    (kv, keep, keep_head_stride, kept, out);
  } else {
    RESTKV_LAUNCH(GatherKeptKernel<uint8_t>, grid, threads, 0, stream)
    (kv, keep, keep_head_stride, kept, out);
  }
  return CheckLaunch("GatherKeptKernel");
}

absl::Status LaunchScatterKept(const void* staged, const KvPages& kv, int32_t kept,
                               cudaStream_t stream) {
  if (absl::Status st = CheckCompaction(kv, kept); !st.ok()) return st;
  const int32_t unit = CopyUnit(kv);
  const int64_t total = static_cast<int64_t>(kv.kv_heads) * kept * kv.layout().row_bytes() / unit;
  const int threads = ThreadsFor(total, kElementThreads);
  const unsigned grid = GridFor(total, threads);
  const uint8_t* in = static_cast<const uint8_t*>(staged);
  if (unit == 4) {
    RESTKV_LAUNCH(ScatterKeptKernel<uint32_t>, grid, threads, 0, stream)(in, kv, kept);
  } else if (unit == 2) {
    RESTKV_LAUNCH(ScatterKeptKernel<uint16_t>, grid, threads, 0, stream)(in, kv, kept);
  } else {
    RESTKV_LAUNCH(ScatterKeptKernel<uint8_t>, grid, threads, 0, stream)(in, kv, kept);
  }
  return CheckLaunch("ScatterKeptKernel");
}

}  // namespace restkv::kernels::cuda
