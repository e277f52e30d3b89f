// The KV page layout of kernels/backend.h as the eviction kernels see it:
//
//   page = [ K: Hkv][block_size][d] | V: [Hkv][block_size][d] ]
//   slot s of a layer lives in page s / block_size, row s % block_size
//
// This file is the one place the eviction kernels (eviction_scores.cu,
// eviction_select.cu) learn where K and V of (slot, KV head) live and what
// element type a page holds. NOTE(restkv): a change of the page element type
// (f16 / bf16 / 8-bit pages) is a local edit of KvElement and the four
// accessors below (KvElement and KvPages are declared in eviction_launch.h,
// the plain-C++ side of the seam); the kernels compute in f32 whatever the pages hold.
#pragma once

#include <cstdint>

#include "kernels/cuda/eviction_launch.h"
#include "kernels/cuda/kernel_launch.h"  // the device model (nvcc or the emulation)

namespace restkv::kernels::cuda {

__device__ __forceinline__ const KvElement* KRow(const KvPages& kv, int32_t slot, int32_t head) {
  const KvElement* page = kv.pages[slot / kv.block_size];
  return page + (static_cast<int64_t>(head) * kv.block_size + slot % kv.block_size) * kv.head_dim;
}

__device__ __forceinline__ const KvElement* VRow(const KvPages& kv, int32_t slot, int32_t head) {
  return KRow(kv, slot, head) + static_cast<int64_t>(kv.kv_heads) * kv.block_size * kv.head_dim;
}

// K[slot][head][i] and V[slot][head][i] as f32.
__device__ __forceinline__ float LoadK(const KvPages& kv, int32_t slot, int32_t head, int32_t i) {
  return static_cast<float>(KRow(kv, slot, head)[i]);
}
__device__ __forceinline__ float LoadV(const KvPages& kv, int32_t slot, int32_t head, int32_t i) {
  return static_cast<float>(VRow(kv, slot, head)[i]);
}

// Raw element moves for compaction (no conversion: kept tokens stay
// bit-identical).
__device__ __forceinline__ KvElement* KRowMut(const KvPages& kv, int32_t slot, int32_t head) {
  return const_cast<KvElement*>(KRow(kv, slot, head));
}
__device__ __forceinline__ KvElement* VRowMut(const KvPages& kv, int32_t slot, int32_t head) {
  return const_cast<KvElement*>(VRow(kv, slot, head));
}

}  // namespace restkv::kernels::cuda
