// Eviction scoring kernels (contracts in eviction_launch.h): window
// attention over the layer's pages, row aggregation (EMA / sum / H2O
// accumulation), the ReST-KV reconstruction indicator, the AWS drift and
// pooling, and the GQA reduction. Each kernel is the device twin of the CPU
// reference named in its launcher's comment; reductions run in a fixed order
// so results are deterministic.
#include <cstdint>

#include "absl/strings/str_format.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/eviction_launch.h"
#include "kernels/cuda/kernel_launch.h"
#include "kernels/cuda/kv_page_access.cuh"

namespace restkv::kernels::cuda {
namespace {

constexpr int kRowThreads = 128;      // one block per softmax row / selection row
constexpr int kWideThreads = 256;     // head-dim-wide blocks
constexpr int kElementThreads = 256;  // grid-stride loops
constexpr int kCandidatesPerBlock = 32;
// The odds ratio's largest accepted attention weight (engine/eviction/scores.cc).
constexpr float kMaxAttention = 1.0f - 1e-6f;

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

absl::Status CheckPages(const KvPages& kv, int32_t heads) {
  if (kv.head_dim < 1 || kv.head_dim > kMaxEvictionHeadDim) {
    return absl::InvalidArgumentError(absl::StrFormat("eviction kernels: head_dim %d outside 1..%d",
                                                      kv.head_dim, kMaxEvictionHeadDim));
  }
  if (kv.kv_heads < 1 || kv.block_size < 1 || kv.num_tokens < 1 || kv.pages == nullptr ||
      static_cast<int32_t>(kv.dtype) < 0 || static_cast<int32_t>(kv.dtype) > 3) {
    return absl::InvalidArgumentError(
        absl::StrFormat("eviction kernels: bad pages (kv_heads %d, block_size %d, tokens %d)",
                        kv.kv_heads, kv.block_size, kv.num_tokens));
  }
  if (heads < 1 || heads % kv.kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("eviction kernels: %d heads over %d KV heads", heads, kv.kv_heads));
  }
  return absl::OkStatus();
}

absl::Status CheckHeadRange(int32_t heads, int32_t head_begin, int32_t num_heads) {
  if (num_heads < 1 || num_heads > 65535 || head_begin < 0 || head_begin + num_heads > heads) {
    return absl::InvalidArgumentError(absl::StrFormat("eviction kernels: heads [%d, %d) of %d",
                                                      head_begin, head_begin + num_heads, heads));
  }
  return absl::OkStatus();
}

// One block per (window row t, local head hl).
__global__ void __launch_bounds__(kRowThreads)
    WindowProbsKernel(const float* __restrict__ q, int64_t q_row_stride, int32_t first_pos,
                      KvPages kv, int32_t group, int32_t head_begin, float scale,
                      float* __restrict__ probs) {
  __shared__ float q_s[kMaxEvictionHeadDim];
  __shared__ float warp_max[kMaxWarps];
  __shared__ double warp_sum[kMaxWarps];
  const int32_t t = static_cast<int32_t>(blockIdx.x);
  const int32_t hl = static_cast<int32_t>(blockIdx.y);
  const int32_t h = head_begin + hl;
  const int32_t g = h / group;
  const int32_t d = kv.head_dim;
  const int64_t n = kv.num_tokens;
  for (int32_t i = threadIdx.x; i < d; i += blockDim.x) {
    q_s[i] = q[t * q_row_stride + static_cast<int64_t>(h) * d + i];
  }
  __syncthreads();
  float* row = probs + (static_cast<int64_t>(hl) * gridDim.x + t) * n;
  const int64_t visible = static_cast<int64_t>(first_pos) + t + 1 < n ? first_pos + t + 1 : n;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) {
    const RowReader k = KRow(kv, static_cast<int32_t>(j), g);
    float dot = 0.0f;
    for (int32_t i = 0; i < d; ++i) dot += q_s[i] * k[i];
    const float logit = scale * dot;
    row[j] = logit;
    mx = fmaxf(mx, logit);
  }
  mx = BlockMax(mx, warp_max);
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) {
    const float e = expf(row[j] - mx);
    row[j] = e;
    sum += e;
  }
  sum = BlockSum(sum, warp_sum);
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) row[j] = j < visible ? row[j] * inv : 0.0f;
}

__global__ void AggregateRowsKernel(const float* __restrict__ probs,
                                    const float* __restrict__ weights, int32_t num_heads,
                                    int32_t num_rows, int64_t row_stride, int64_t num_cols,
                                    float* __restrict__ out) {
  const int64_t total = static_cast<int64_t>(num_heads) * num_cols;
  for (int64_t e = GlobalThread(); e < total; e += GridStride()) {
    const int64_t hl = e / num_cols, j = e % num_cols;
    const float* p = probs + hl * num_rows * row_stride + j;
    float acc = 0.0f;
    for (int32_t t = 0; t < num_rows; ++t) {
      // The CPU skips zero-weight rows (and multiplies-adds with FMA).
      if (weights[t] != 0.0f) acc = fmaf(weights[t], p[t * row_stride], acc);
    }
    out[e] = acc;
  }
}

__global__ void AccumulateRowsKernel(const float* __restrict__ probs, int32_t num_heads,
                                     int32_t num_rows, int64_t num_cols, bool reset,
                                     float* __restrict__ acc) {
  const int64_t total = static_cast<int64_t>(num_heads) * num_cols;
  for (int64_t e = GlobalThread(); e < total; e += GridStride()) {
    const int64_t hl = e / num_cols, j = e % num_cols;
    const float* p = probs + hl * num_rows * num_cols + j;
    float a = reset ? 0.0f : acc[e];
    for (int32_t t = 0; t < num_rows; ++t) a += p[t * num_cols];
    acc[e] = a;
  }
}

// One block per local head: lanes of d threads stride over the candidates,
// then each dim sums its lanes in order.
__global__ void __launch_bounds__(kWideThreads)
    CandidateOutputKernel(const float* __restrict__ abar, KvPages kv, int32_t group,
                          int32_t head_begin, int64_t num_candidates, float* __restrict__ obar) {
  __shared__ double part[kWideThreads];
  const int32_t hl = static_cast<int32_t>(blockIdx.x);
  const int32_t g = (head_begin + hl) / group;
  const int32_t d = kv.head_dim;
  const int32_t lanes = static_cast<int32_t>(blockDim.x) / d;
  const int32_t i = static_cast<int32_t>(threadIdx.x) % d;
  const int32_t lane = static_cast<int32_t>(threadIdx.x) / d;
  double acc = 0.0;
  if (lane < lanes) {
    const float* a = abar + hl * num_candidates;
    for (int64_t j = lane; j < num_candidates; j += lanes) {
      acc += static_cast<double>(a[j]) * LoadV(kv, static_cast<int32_t>(j), g, i);
    }
  }
  part[threadIdx.x] = acc;
  __syncthreads();
  if (static_cast<int32_t>(threadIdx.x) < d) {
    double sum = 0.0;
    for (int32_t l = 0; l < lanes; ++l) sum += part[l * d + threadIdx.x];
    obar[static_cast<int64_t>(hl) * d + threadIdx.x] = static_cast<float>(sum);
  }
}

// One block per (32 candidates, local head): diff rows in shared memory,
// thread i < d projects dimension i of every row through R's row i.
__global__ void __launch_bounds__(kWideThreads)
    ReconstructionScoresKernel(const float* __restrict__ abar, const float* __restrict__ obar,
                               KvPages kv, const float* __restrict__ wo_factor, int32_t group,
                               int32_t head_begin, int64_t num_candidates, float tau,
                               float* __restrict__ scores) {
  __shared__ float diff[kCandidatesPerBlock * kMaxEvictionHeadDim];
  const int32_t hl = static_cast<int32_t>(blockIdx.y);
  const int32_t h = head_begin + hl;
  const int32_t g = h / group;
  const int32_t d = kv.head_dim;
  const int64_t j0 = static_cast<int64_t>(blockIdx.x) * kCandidatesPerBlock;
  const float* center = obar + static_cast<int64_t>(hl) * d;
  for (int32_t e = threadIdx.x; e < kCandidatesPerBlock * d; e += blockDim.x) {
    const int32_t c = e / d, i = e % d;
    const int64_t j = j0 + c;
    // R (center - v_j) keeps full precision where v_j is close to center.
    diff[e] = j < num_candidates ? center[i] - LoadV(kv, static_cast<int32_t>(j), g, i) : 0.0f;
  }
  __syncthreads();
  float y[kCandidatesPerBlock];
  const int32_t i = static_cast<int32_t>(threadIdx.x);
  if (i < d) {
    const float* r =
        wo_factor == nullptr ? nullptr : wo_factor + (static_cast<int64_t>(h) * d + i) * d;
    for (int32_t c = 0; c < kCandidatesPerBlock; ++c) {
      const float* x = diff + c * d;
      float acc = 0.0f;
      if (r == nullptr) {
        acc = x[i];
      } else {
        for (int32_t k = i; k < d; ++k) acc += r[k] * x[k];
      }
      y[c] = acc;
    }
  }
  __syncthreads();
  if (i < d) {
    for (int32_t c = 0; c < kCandidatesPerBlock; ++c) diff[c * d + i] = y[c] * y[c];
  }
  __syncthreads();
  const int64_t j = j0 + threadIdx.x;
  if (static_cast<int32_t>(threadIdx.x) < kCandidatesPerBlock && j < num_candidates) {
    float sq = 0.0f;
    for (int32_t k = 0; k < d; ++k) sq += diff[threadIdx.x * d + k];
    const float delta = sqrtf(sq);
    const float dist = tau == 1.0f ? delta : powf(delta, tau);
    const float raw = abar[hl * num_candidates + j];
    // std::clamp's comparisons, so a NaN stays NaN as on the CPU.
    const float a = raw < 0.0f ? 0.0f : (kMaxAttention < raw ? kMaxAttention : raw);
    scores[hl * num_candidates + j] = a / (1.0f - a) * dist;
  }
}

// One block per row: the k-th largest key, then the positions above it plus
// the lowest-index `need` positions equal to it.
__global__ void __launch_bounds__(kRowThreads)
    TopKPositionSumsKernel(const float* __restrict__ probs, int64_t n, int64_t top_k,
                           int64_t* __restrict__ sums) {
  __shared__ unsigned hist[256];
  __shared__ int64_t pick[2];
  __shared__ int counts[kMaxWarps];
  __shared__ int64_t warp_sums[kMaxWarps];
  const float* row = probs + static_cast<int64_t>(blockIdx.x) * n;
  const auto key_of = [row](int64_t j) { return OrderKey(row[j]); };
  const KthKey kth = BlockKthLargest(key_of, n, top_k, hist, pick);
  int64_t sum = 0;
  int64_t equal_before = 0;
  for (int64_t base = 0; base < n; base += blockDim.x) {
    const int64_t j = base + threadIdx.x;
    const uint32_t key = j < n ? key_of(j) : 0u;
    const bool equal = j < n && key == kth.key;
    int equal_total = 0;
    const int rank = BlockExclusiveCount(equal, counts, &equal_total);
    if (j < n && (key > kth.key || (equal && equal_before + rank < kth.need))) sum += j;
    equal_before += equal_total;
  }
  sum = BlockSum(sum, warp_sums);
  if (threadIdx.x == 0) sums[blockIdx.x] = sum;
}

__global__ void AdaptiveShapesKernel(const int64_t* __restrict__ sums, int32_t num_heads,
                                     int32_t num_rows, int64_t top_k, double beta, int32_t k_min,
                                     PoolShape* __restrict__ shapes) {
  const int64_t hl = GlobalThread();
  if (hl >= num_heads) return;
  const int64_t* s = sums + hl * num_rows;
  int64_t early = 0, late = 0;
  for (int32_t t = 0; t < num_rows; ++t) (t < num_rows / 2 ? early : late) += s[t];
  // engine::WindowDrift, then engine::AdaptiveKernelFor, in the same doubles.
  const double drift = 2.0 * static_cast<double>(early - late) /
                       (static_cast<double>(num_rows) * static_cast<double>(top_k));
  const double steps = floor(drift / beta);
  const double widen = floor(fabs(drift) / beta);
  const double half_max = 1e9;
  const int32_t width = 2 * static_cast<int32_t>(widen < half_max ? widen : half_max) + 1;
  double shift = drift > 0.0 ? steps : steps + 1.0;
  shift = shift < -half_max ? -half_max : (shift > half_max ? half_max : shift);
  shapes[hl] = PoolShape{width > k_min ? width : k_min, static_cast<int32_t>(shift)};
}

__global__ void PoolKernel(PoolKind kind, const float* __restrict__ in, int32_t num_heads,
                           int64_t num, const PoolShape* __restrict__ shapes, int32_t size,
                           float* __restrict__ out) {
  const int64_t total = static_cast<int64_t>(num_heads) * num;
  for (int64_t e = GlobalThread(); e < total; e += GridStride()) {
    const int64_t hl = e / num, j = e % num;
    const float* x = in + hl * num;
    if (kind == PoolKind::kCopy) {
      out[e] = x[j];
    } else if (kind == PoolKind::kShiftedBox) {
      const PoolShape shape = shapes[hl];
      const int64_t half = shape.size / 2;
      double sum = 0.0;
      for (int64_t i = j + shape.shift - half; i <= j + shape.shift + half; ++i) {
        sum += x[i < 0 ? 0 : (i >= num ? num - 1 : i)];  // edges replicated
      }
      out[e] = static_cast<float>(sum * (1.0 / shape.size));
    } else if (kind == PoolKind::kAvgZeroPad) {
      const int64_t half = size / 2;
      double sum = 0.0;
      for (int64_t i = j - half; i <= j + half; ++i) sum += i < 0 || i >= num ? 0.0 : x[i];
      out[e] = static_cast<float>(sum * (1.0 / size));
    } else {
      const int64_t half = size / 2;
      const int64_t lo = j - half < 0 ? 0 : j - half;
      const int64_t hi = j + half >= num ? num - 1 : j + half;
      float m = x[lo];
      for (int64_t i = lo + 1; i <= hi; ++i) m = m < x[i] || m != m ? x[i] : m;
      out[e] = m;
    }
  }
}

__global__ void ReduceGroupsKernel(const float* __restrict__ head_scores, int32_t num_groups,
                                   int32_t group, int64_t head_stride, int64_t num, bool use_max,
                                   float* __restrict__ out) {
  const int64_t total = static_cast<int64_t>(num_groups) * num;
  for (int64_t e = GlobalThread(); e < total; e += GridStride()) {
    const int64_t g = e / num, j = e % num;
    const float* s = head_scores + g * group * head_stride + j;
    float v = s[0];
    for (int32_t h = 1; h < group; ++h) {
      const float x = s[h * head_stride];
      v = use_max ? (v < x ? x : v) : v + x;  // std::max keeps the first unless it is less
    }
    if (!use_max && group > 1) v *= 1.0f / static_cast<float>(group);
    out[e] = v;
  }
}

}  // namespace

absl::Status LaunchWindowProbs(const float* q, int64_t q_row_stride, int32_t num_rows,
                               int32_t first_pos, const KvPages& kv, int32_t heads,
                               int32_t head_begin, int32_t num_heads, float scale, float* probs,
                               cudaStream_t stream) {
  if (absl::Status st = CheckPages(kv, heads); !st.ok()) return st;
  if (absl::Status st = CheckHeadRange(heads, head_begin, num_heads); !st.ok()) return st;
  if (num_rows < 1 || first_pos < 0 || static_cast<int64_t>(first_pos) + num_rows > kv.num_tokens) {
    return absl::InvalidArgumentError(
        absl::StrFormat("LaunchWindowProbs: rows [%d, %d) of %d tokens", first_pos,
                        first_pos + num_rows, kv.num_tokens));
  }
  const dim3 grid(static_cast<unsigned>(num_rows), static_cast<unsigned>(num_heads));
  RESTKV_LAUNCH(WindowProbsKernel, grid, ThreadsFor(kv.num_tokens, kRowThreads), 0, stream)
  (q, q_row_stride, first_pos, kv, heads / kv.kv_heads, head_begin, scale, probs);
  return CheckLaunch("WindowProbsKernel");
}

absl::Status LaunchAggregateRows(const float* probs, const float* weights, int32_t num_heads,
                                 int32_t num_rows, int64_t row_stride, int64_t num_cols, float* out,
                                 cudaStream_t stream) {
  if (num_heads < 1 || num_rows < 1 || num_cols < 0 || row_stride < num_cols) {
    return absl::InvalidArgumentError("LaunchAggregateRows: bad shape");
  }
  if (num_cols == 0) return absl::OkStatus();
  const int threads = ThreadsFor(num_heads * num_cols, kElementThreads);
  RESTKV_LAUNCH(AggregateRowsKernel, GridFor(num_heads * num_cols, threads), threads, 0, stream)
  (probs, weights, num_heads, num_rows, row_stride, num_cols, out);
  return CheckLaunch("AggregateRowsKernel");
}

absl::Status LaunchAccumulateRows(const float* probs, int32_t num_heads, int32_t num_rows,
                                  int64_t num_cols, bool reset, float* acc, cudaStream_t stream) {
  if (num_heads < 1 || num_rows < 1 || num_cols < 1) {
    return absl::InvalidArgumentError("LaunchAccumulateRows: bad shape");
  }
  const int threads = ThreadsFor(num_heads * num_cols, kElementThreads);
  RESTKV_LAUNCH(AccumulateRowsKernel, GridFor(num_heads * num_cols, threads), threads, 0, stream)
  (probs, num_heads, num_rows, num_cols, reset, acc);
  return CheckLaunch("AccumulateRowsKernel");
}

absl::Status LaunchCandidateOutput(const float* abar, const KvPages& kv, int32_t heads,
                                   int32_t head_begin, int32_t num_heads, int64_t num_candidates,
                                   float* obar, cudaStream_t stream) {
  if (absl::Status st = CheckPages(kv, heads); !st.ok()) return st;
  if (absl::Status st = CheckHeadRange(heads, head_begin, num_heads); !st.ok()) return st;
  if (num_candidates < 0 || num_candidates > kv.num_tokens) {
    return absl::InvalidArgumentError("LaunchCandidateOutput: bad candidate count");
  }
  // Lanes of d threads stride over the candidates: one lane per dim when
  // there are few, as many as fit 256 threads when there are many.
  const int threads = num_candidates >= 1024 ? kWideThreads : ThreadsFor(kv.head_dim, kWideThreads);
  RESTKV_LAUNCH(CandidateOutputKernel, static_cast<unsigned>(num_heads), threads, 0, stream)
  (abar, kv, heads / kv.kv_heads, head_begin, num_candidates, obar);
  return CheckLaunch("CandidateOutputKernel");
}

absl::Status LaunchReconstructionScores(const float* abar, const float* obar, const KvPages& kv,
                                        const float* wo_factor, int32_t heads, int32_t head_begin,
                                        int32_t num_heads, int64_t num_candidates, float tau,
                                        float* scores, cudaStream_t stream) {
  if (absl::Status st = CheckPages(kv, heads); !st.ok()) return st;
  if (absl::Status st = CheckHeadRange(heads, head_begin, num_heads); !st.ok()) return st;
  if (num_candidates < 0 || num_candidates > kv.num_tokens) {
    return absl::InvalidArgumentError("LaunchReconstructionScores: bad candidate count");
  }
  if (num_candidates == 0) return absl::OkStatus();
  const int64_t blocks = (num_candidates + kCandidatesPerBlock - 1) / kCandidatesPerBlock;
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(num_heads));
  // Thread i < d projects dimension i; threads < 32 finish a candidate each.
  RESTKV_LAUNCH(ReconstructionScoresKernel, grid, ThreadsFor(kv.head_dim, kWideThreads), 0, stream)
  (abar, obar, kv, wo_factor, heads / kv.kv_heads, head_begin, num_candidates, tau, scores);
  return CheckLaunch("ReconstructionScoresKernel");
}

absl::Status LaunchTopKPositionSums(const float* probs, int32_t num_rows, int64_t n, int64_t top_k,
                                    int64_t* sums, cudaStream_t stream) {
  if (num_rows < 1 || top_k < 1 || top_k > n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("LaunchTopKPositionSums: top %d of %d in %d rows", top_k, n, num_rows));
  }
  RESTKV_LAUNCH(TopKPositionSumsKernel, static_cast<unsigned>(num_rows), ThreadsFor(n, kRowThreads),
                0, stream)
  (probs, n, top_k, sums);
  return CheckLaunch("TopKPositionSumsKernel");
}

absl::Status LaunchAdaptiveShapes(const int64_t* sums, int32_t num_heads, int32_t num_rows,
                                  int64_t top_k, double beta, int32_t k_min, PoolShape* shapes,
                                  cudaStream_t stream) {
  if (num_heads < 1 || num_rows < 2 || num_rows % 2 != 0 || top_k < 1 || !(beta > 0.0) ||
      k_min < 1 || k_min % 2 == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("LaunchAdaptiveShapes: rows %d, top_k %d, beta %f, k_min %d", num_rows,
                        top_k, beta, k_min));
  }
  const int threads = ThreadsFor(num_heads, kElementThreads);
  RESTKV_LAUNCH(AdaptiveShapesKernel, GridFor(num_heads, threads), threads, 0, stream)
  (sums, num_heads, num_rows, top_k, beta, k_min, shapes);
  return CheckLaunch("AdaptiveShapesKernel");
}

absl::Status LaunchPool(PoolKind kind, const float* in, int32_t num_heads, int64_t num,
                        const PoolShape* shapes, int32_t size, float* out, cudaStream_t stream) {
  if (num_heads < 1 || num < 1) return absl::InvalidArgumentError("LaunchPool: bad shape");
  if ((kind == PoolKind::kAvgZeroPad || kind == PoolKind::kMax) && (size < 1 || size % 2 == 0)) {
    return absl::InvalidArgumentError(absl::StrFormat("LaunchPool: width %d", size));
  }
  if (kind == PoolKind::kShiftedBox && shapes == nullptr) {
    return absl::InvalidArgumentError("LaunchPool: a shifted box needs shapes");
  }
  const int threads = ThreadsFor(num_heads * num, kElementThreads);
  RESTKV_LAUNCH(PoolKernel, GridFor(num_heads * num, threads), threads, 0, stream)
  (kind, in, num_heads, num, shapes, size, out);
  return CheckLaunch("PoolKernel");
}

absl::Status LaunchReduceGroups(const float* head_scores, int32_t num_groups, int32_t group,
                                int64_t head_stride, int64_t num, bool use_max, float* out,
                                cudaStream_t stream) {
  if (num_groups < 1 || group < 1 || num < 1 || head_stride < num) {
    return absl::InvalidArgumentError("LaunchReduceGroups: bad shape");
  }
  const int threads = ThreadsFor(num_groups * num, kElementThreads);
  RESTKV_LAUNCH(ReduceGroupsKernel, GridFor(num_groups * num, threads), threads, 0, stream)
  (head_scores, num_groups, group, head_stride, num, use_max, out);
  return CheckLaunch("ReduceGroupsKernel");
}

}  // namespace restkv::kernels::cuda
