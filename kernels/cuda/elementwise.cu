// Element-wise and row-wise kernels of CudaBackend (contracts in launch.h).
// Grid-stride loops over int64 indices: any n fits a bounded grid.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/kernel_launch.h"
#include "kernels/cuda/launch.h"

namespace restkv::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// Enough blocks to fill any current GPU several times over; the loops
// stride past the grid for larger n.
unsigned GridFor(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, 65535)));
}

__device__ __forceinline__ int64_t GlobalThread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t GridStride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

__device__ __forceinline__ float Bf16BitsToFloat(Bf16Bits b) {
  return __uint_as_float(static_cast<uint32_t>(b) << 16);
}

__global__ void F32ToBf16Kernel(const float* __restrict__ src, int64_t n,
                                Bf16Bits* __restrict__ dst) {
  for (int64_t i = GlobalThread(); i < n; i += GridStride()) {
    dst[i] = __bfloat16_as_ushort(__float2bfloat16_rn(src[i]));
  }
}

__global__ void EmbeddingKernel(const Bf16Bits* __restrict__ table, int64_t cols,
                                const int32_t* __restrict__ ids, int64_t m,
                                float* __restrict__ out) {
  const int64_t total = m * cols;
  for (int64_t e = GlobalThread(); e < total; e += GridStride()) {
    const int64_t i = e / cols, c = e % cols;
    out[e] = Bf16BitsToFloat(table[static_cast<int64_t>(ids[i]) * cols + c]);
  }
}

// One block per row: sum of squares by a block reduction, then scale.
// In place is safe: each thread reads x[i] before writing y[i] for the same
// i, and every read of the reduction happens before the barrier.
__global__ void RmsNormKernel(const float* x, const float* __restrict__ weight, int64_t n,
                              float eps, float* y) {
  __shared__ float warp_sums[kThreads / 32];
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * n;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * n;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) sum += xr[i] * xr[i];
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = sum;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];  // same order in every thread
  const float scale = rsqrtf(total / static_cast<float>(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] * scale * weight[i];
}

__global__ void AddBiasKernel(float* __restrict__ x, const float* __restrict__ bias, int64_t m,
                              int64_t n) {
  const int64_t total = m * n;
  for (int64_t e = GlobalThread(); e < total; e += GridStride()) x[e] += bias[e % n];
}

__global__ void AddKernel(float* __restrict__ x, const float* __restrict__ y, int64_t n) {
  for (int64_t i = GlobalThread(); i < n; i += GridStride()) x[i] += y[i];
}

__global__ void SwiGluKernel(float* __restrict__ gate, const float* __restrict__ up, int64_t n) {
  for (int64_t i = GlobalThread(); i < n; i += GridStride()) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

// One thread per (token, rotated pair): the angle is built by repeated
// multiplication exactly as the CPU backend does (theta *= theta_scale), so
// angles agree bit for bit before cos/sin; the thread then rotates that pair
// in every head.
__global__ void RopeKernel(float* __restrict__ x, const int32_t* __restrict__ positions, int64_t m,
                           int32_t heads, int32_t head_dim, RopeLaunchParams p) {
  const int32_t half = p.rot_dims / 2;
  const int64_t total = m * half;
  for (int64_t e = GlobalThread(); e < total; e += GridStride()) {
    const int64_t t = e / half;
    const int32_t i = static_cast<int32_t>(e % half);
    float theta = static_cast<float>(positions[t]);
    for (int32_t k = 0; k < i; ++k) theta *= p.theta_scale;
    float angle = theta * p.position_scale;
    if (p.freq_factors != nullptr) angle /= p.freq_factors[i];
    const float c = cosf(angle), s = sinf(angle);
    const int32_t a = p.neox ? i : 2 * i;
    const int32_t b = p.neox ? i + half : 2 * i + 1;
    for (int32_t h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * head_dim;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
  }
}

// One element of a 16-bit or f32 page: thread per element, rounded to
// nearest even like kernels/fp16.h.
template <KvDtype DT>
__device__ __forceinline__ void StoreElement(uint8_t* at, float x) {
  if constexpr (DT == KvDtype::kF32) {
    *reinterpret_cast<float*>(at) = x;
  } else if constexpr (DT == KvDtype::kF16) {
    *reinterpret_cast<uint16_t*>(at) = __half_as_ushort(__float2half_rn(x));
  } else {
    *reinterpret_cast<uint16_t*>(at) = __bfloat16_as_ushort(__float2bfloat16_rn(x));
  }
}

template <KvDtype DT>
__global__ void StoreKvKernel(const float* __restrict__ k, const float* __restrict__ v,
                              const DeviceKvSlot* __restrict__ slots, int64_t m,
                              DeviceKvLayout kv) {
  constexpr int64_t kBytes = DT == KvDtype::kF32 ? 4 : 2;
  const int64_t row = static_cast<int64_t>(kv.kv_heads) * kv.head_dim;  // elements per token
  const int64_t total = m * row;
  for (int64_t e = GlobalThread(); e < total; e += GridStride()) {
    const int64_t t = e / row;
    const int32_t h = static_cast<int32_t>((e % row) / kv.head_dim);
    const int32_t i = static_cast<int32_t>(e % kv.head_dim);
    const DeviceKvSlot slot = slots[t];
    uint8_t* page = reinterpret_cast<uint8_t*>(slot.page);
    const int64_t dst =
        (static_cast<int64_t>(h) * kv.block_size + slot.row) * kv.row_bytes + i * kBytes;
    StoreElement<DT>(page + dst, k[e]);
    StoreElement<DT>(page + kv.v_offset + dst, v[e]);
  }
}

// q8_0: one warp per (token, head) row of K or V, since the row's scale
// depends on all of it: the lanes stride over the row, a warp max gives the
// absolute maximum (exact in any order, so the bits are EncodeKvRow's,
// kernels/kv_dtype.cc), and lane 0 writes the scale. Every lane of a warp
// takes the same rows, so the shuffles are never divergent.
__global__ void StoreKvQ8Kernel(const float* __restrict__ k, const float* __restrict__ v,
                                const DeviceKvSlot* __restrict__ slots, int64_t m,
                                DeviceKvLayout kv) {
  const int32_t lane = static_cast<int32_t>(threadIdx.x & 31);
  const int64_t total = m * kv.kv_heads * 2;
  for (int64_t e = GlobalThread() / 32; e < total; e += GridStride() / 32) {
    const bool is_v = (e % 2) != 0;
    const int64_t th = e / 2;  // token * Hkv + head
    const int64_t t = th / kv.kv_heads;
    const int32_t h = static_cast<int32_t>(th % kv.kv_heads);
    const float* x = (is_v ? v : k) + th * kv.head_dim;
    float amax = 0.0f;
    for (int32_t i = lane; i < kv.head_dim; i += 32) amax = fmaxf(amax, fabsf(x[i]));
    for (int off = 16; off > 0; off >>= 1) {
      amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
    }
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    const DeviceKvSlot slot = slots[t];
    uint8_t* page = reinterpret_cast<uint8_t*>(slot.page);
    const int64_t r = static_cast<int64_t>(h) * kv.block_size + slot.row;
    int8_t* q = reinterpret_cast<int8_t*>(page + (is_v ? kv.v_offset : 0) + r * kv.row_bytes);
    for (int32_t i = lane; i < kv.head_dim; i += 32) {
      q[i] = static_cast<int8_t>(fminf(fmaxf(rintf(x[i] * inv), -127.0f), 127.0f));
    }
    if (lane == 0) {
      reinterpret_cast<float*>(page + (is_v ? kv.v_scale_offset : kv.k_scale_offset))[r] =
          amax / 127.0f;
    }
  }
}

__global__ void GatherRowsKernel(const float* __restrict__ src, const int64_t* __restrict__ rows,
                                 int64_t num_rows, int64_t width, float* __restrict__ dst) {
  const int64_t total = num_rows * width;
  for (int64_t e = GlobalThread(); e < total; e += GridStride()) {
    const int64_t i = e / width;
    dst[e] = src[rows[i] * width + e % width];
  }
}

}  // namespace

absl::Status LaunchF32ToBf16(const float* src, int64_t n, Bf16Bits* dst, cudaStream_t stream) {
  if (n <= 0) return absl::OkStatus();
  RESTKV_LAUNCH(F32ToBf16Kernel, GridFor(n), kThreads, 0, stream)(src, n, dst);
  return CheckLaunch("F32ToBf16Kernel");
}

absl::Status LaunchEmbedding(const Bf16Bits* table, int64_t cols, const int32_t* ids, int64_t m,
                             float* out, cudaStream_t stream) {
  if (m <= 0) return absl::OkStatus();
  RESTKV_LAUNCH(EmbeddingKernel, GridFor(m * cols), kThreads, 0, stream)(table, cols, ids, m, out);
  return CheckLaunch("EmbeddingKernel");
}

absl::Status LaunchRmsNorm(const float* x, const float* weight, int64_t m, int64_t n, float eps,
                           float* y, cudaStream_t stream) {
  if (m <= 0) return absl::OkStatus();
  RESTKV_LAUNCH(RmsNormKernel, static_cast<unsigned>(m), kThreads, 0, stream)(x, weight, n, eps, y);
  return CheckLaunch("RmsNormKernel");
}

absl::Status LaunchAddBias(float* x, const float* bias, int64_t m, int64_t n, cudaStream_t stream) {
  if (m <= 0) return absl::OkStatus();
  RESTKV_LAUNCH(AddBiasKernel, GridFor(m * n), kThreads, 0, stream)(x, bias, m, n);
  return CheckLaunch("AddBiasKernel");
}

absl::Status LaunchAdd(float* x, const float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return absl::OkStatus();
  RESTKV_LAUNCH(AddKernel, GridFor(n), kThreads, 0, stream)(x, y, n);
  return CheckLaunch("AddKernel");
}

absl::Status LaunchSwiGlu(float* gate, const float* up, int64_t n, cudaStream_t stream) {
  if (n <= 0) return absl::OkStatus();
  RESTKV_LAUNCH(SwiGluKernel, GridFor(n), kThreads, 0, stream)(gate, up, n);
  return CheckLaunch("SwiGluKernel");
}

absl::Status LaunchRope(float* x, const int32_t* positions, int64_t m, int32_t heads,
                        int32_t head_dim, const RopeLaunchParams& params, cudaStream_t stream) {
  if (m <= 0 || params.rot_dims < 2) return absl::OkStatus();
  RESTKV_LAUNCH(RopeKernel, GridFor(m * (params.rot_dims / 2)), kThreads, 0, stream)
  (x, positions, m, heads, head_dim, params);
  return CheckLaunch("RopeKernel");
}

absl::Status LaunchStoreKv(const float* k, const float* v, const DeviceKvSlot* slots, int64_t m,
                           const DeviceKvLayout& kv, cudaStream_t stream) {
  if (m <= 0) return absl::OkStatus();
  if (kv.row_bytes != static_cast<int64_t>(kv.head_dim) * KvElementBytes(kv.dtype)) {
    return absl::InvalidArgumentError("StoreKv: the KV layout's row size does not match its dtype");
  }
  const unsigned grid = GridFor(m * kv.kv_heads * kv.head_dim);
  switch (kv.dtype) {
    case KvDtype::kF32:
      RESTKV_LAUNCH(StoreKvKernel<KvDtype::kF32>, grid, kThreads, 0, stream)(k, v, slots, m, kv);
      break;
    case KvDtype::kF16:
      RESTKV_LAUNCH(StoreKvKernel<KvDtype::kF16>, grid, kThreads, 0, stream)(k, v, slots, m, kv);
      break;
    case KvDtype::kBf16:
      RESTKV_LAUNCH(StoreKvKernel<KvDtype::kBf16>, grid, kThreads, 0, stream)(k, v, slots, m, kv);
      break;
    case KvDtype::kQ8_0:
      RESTKV_LAUNCH(StoreKvQ8Kernel, GridFor(m * kv.kv_heads * 2 * 32), kThreads, 0, stream)
      (k, v, slots, m, kv);
      break;
  }
  return CheckLaunch("StoreKvKernel");
}

absl::Status LaunchGatherRows(const float* src, const int64_t* rows, int64_t num_rows,
                              int64_t width, float* dst, cudaStream_t stream) {
  if (num_rows <= 0) return absl::OkStatus();
  RESTKV_LAUNCH(GatherRowsKernel, GridFor(num_rows * width), kThreads, 0, stream)
  (src, rows, num_rows, width, dst);
  return CheckLaunch("GatherRowsKernel");
}

}  // namespace restkv::kernels::cuda
