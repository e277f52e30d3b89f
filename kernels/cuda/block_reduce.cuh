// Block-wide reductions, counts and an order-preserving radix select for the
// eviction kernels. Every helper is called by all threads of the block (it
// has barriers), with blockDim.x a multiple of 32 and at most 1024, and
// leaves its shared scratch free for reuse when it returns.
#pragma once

#include <cstdint>

#include "kernels/cuda/kernel_launch.h"  // the device model (nvcc or the emulation)

namespace restkv::kernels::cuda {

constexpr int kMaxWarps = 32;

__device__ __forceinline__ float BlockMax(float v, float* warp_vals /*[kMaxWarps] shared*/) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  const int warps = static_cast<int>(blockDim.x) / 32;
  if ((threadIdx.x & 31) == 0) warp_vals[threadIdx.x >> 5] = v;
  __syncthreads();
  float out = warp_vals[0];
  for (int w = 1; w < warps; ++w) out = fmaxf(out, warp_vals[w]);
  __syncthreads();
  return out;
}

// Sum in a fixed order (lanes by xor tree, then warps in order), so every
// thread gets the same value and reruns give the same bits.
template <typename T>
__device__ __forceinline__ T BlockSum(T v, T* warp_vals /*[kMaxWarps] shared*/) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int warps = static_cast<int>(blockDim.x) / 32;
  if ((threadIdx.x & 31) == 0) warp_vals[threadIdx.x >> 5] = v;
  __syncthreads();
  T out = warp_vals[0];
  for (int w = 1; w < warps; ++w) out += warp_vals[w];
  __syncthreads();
  return out;
}

// Exclusive prefix count of `pred` over the block in thread order; *total
// gets the block's count.
__device__ __forceinline__ int BlockExclusiveCount(bool pred, int* warp_counts /*[kMaxWarps]*/,
                                                   int* total) {
  const unsigned ballot = __ballot_sync(0xffffffffu, pred);
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int warps = static_cast<int>(blockDim.x) / 32;
  if (lane == 0) warp_counts[warp] = __popc(ballot);
  __syncthreads();
  int before = 0, all = 0;
  for (int w = 0; w < warps; ++w) {
    before += w < warp ? warp_counts[w] : 0;
    all += warp_counts[w];
  }
  __syncthreads();
  *total = all;
  return before + __popc(ballot & ((1u << lane) - 1u));
}

// Order-preserving map of a float to uint32 (a < b iff key(a) < key(b)).
// NaN maps to 0 (below -inf) and -0 just below +0, as the CPU's drift
// selection (engine/eviction/pooling.cc) ranks them.
__device__ __forceinline__ uint32_t OrderKey(float x) {
  const uint32_t bits = __float_as_uint(x);
  const uint32_t key = bits ^ ((0u - (bits >> 31)) | 0x80000000u);
  return (bits & 0x7fffffffu) > 0x7f800000u ? 0u : key;
}

// The key of the CPU's top-k (engine/eviction/select.cc TopKIndices), which
// compares floats: NaN ranks as -inf, and -0 equals +0.
__device__ __forceinline__ uint32_t SelectionKey(float x) {
  if (x != x) x = -INFINITY;
  if (x == 0.0f) x = 0.0f;
  return OrderKey(x);
}

struct KthKey {
  uint32_t key;  // the k-th largest key
  int64_t need;  // how many entries equal to `key` belong to the top k
};

// The k-th largest of key_of(j), j < n (1 <= k <= n): four 8-bit radix
// passes over the keys, each narrowing the prefix of the answer.
template <typename KeyOf>
__device__ KthKey BlockKthLargest(const KeyOf& key_of, int64_t n, int64_t k,
                                  unsigned* hist /*[256] shared*/, int64_t* pick /*[2] shared*/) {
  uint32_t prefix = 0, mask = 0;
  int64_t remaining = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = static_cast<int>(threadIdx.x); i < 256; i += static_cast<int>(blockDim.x)) {
      hist[i] = 0;
    }
    __syncthreads();
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const uint32_t key = key_of(j);
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int64_t above = 0;
      int bin = 255;
      for (; bin > 0; --bin) {
        if (above + hist[bin] >= remaining) break;
        above += hist[bin];
      }
      pick[0] = bin;
      pick[1] = remaining - above;
    }
    __syncthreads();
    prefix |= static_cast<uint32_t>(pick[0]) << shift;
    mask |= 255u << shift;
    remaining = pick[1];
    // pick is rewritten only after the next pass's two barriers, by which
    // time every thread has read it.
  }
  __syncthreads();  // hist and pick free for the caller
  return KthKey{prefix, remaining};
}

}  // namespace restkv::kernels::cuda
