// The KV page layout of kernels/kv_dtype.h as the eviction kernels see it:
//
//   page = [ K rows: Hkv][block_size] | V rows: same | (q8_0) K scales | V scales ]
//   slot s of a layer lives in page s / block_size, row s % block_size
//
// This file is the one place the eviction kernels (eviction_scores.cu,
// eviction_select.cu) learn where K and V of (slot, KV head) live and how a
// stored element widens to f32; the offsets are KvPageLayout's. The dtype is
// a kernel argument, not a template parameter: it is uniform over a launch,
// so the branch costs no divergence, and one kernel per shape keeps the
// emulated tests and the GPU check small.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/eviction_launch.h"
#include "kernels/cuda/kernel_launch.h"  // the device model (nvcc or the emulation)

namespace restkv::kernels::cuda {

__device__ __forceinline__ int32_t ElementBytes(KvDtype dtype) {
  return dtype == KvDtype::kF32 ? 4 : dtype == KvDtype::kQ8_0 ? 1 : 2;
}
__device__ __forceinline__ int64_t RowBytes(const KvPages& kv) {
  return static_cast<int64_t>(kv.head_dim) * ElementBytes(kv.dtype);
}
__device__ __forceinline__ int64_t RowsPerPage(const KvPages& kv) {
  return static_cast<int64_t>(kv.kv_heads) * kv.block_size;
}

// Stored bytes of the K (v = false) or V row of (slot, head).
__device__ __forceinline__ uint8_t* RowBytesAt(const KvPages& kv, int32_t slot, int32_t head,
                                               bool v) {
  uint8_t* page = reinterpret_cast<uint8_t*>(kv.pages[slot / kv.block_size]);
  const int64_t row = static_cast<int64_t>(head) * kv.block_size + slot % kv.block_size;
  return page + ((v ? RowsPerPage(kv) : 0) + row) * RowBytes(kv);
}

// The q8_0 scale of the K or V row of (slot, head).
__device__ __forceinline__ float* ScaleAt(const KvPages& kv, int32_t slot, int32_t head, bool v) {
  uint8_t* page = reinterpret_cast<uint8_t*>(kv.pages[slot / kv.block_size]);
  const int64_t row = static_cast<int64_t>(head) * kv.block_size + slot % kv.block_size;
  const int64_t scales = 2 * RowsPerPage(kv) * RowBytes(kv);  // KvPageLayout::k_scale_offset
  return reinterpret_cast<float*>(page + scales) + (v ? RowsPerPage(kv) : 0) + row;
}

// Element i of a stored row as f32; `scale` is the row's q8_0 scale.
__device__ __forceinline__ float WidenElement(KvDtype dtype, const uint8_t* row, int32_t i,
                                              float scale) {
  switch (dtype) {
    case KvDtype::kF32:
      return reinterpret_cast<const float*>(row)[i];
    case KvDtype::kF16:
      return __half2float(__ushort_as_half(reinterpret_cast<const uint16_t*>(row)[i]));
    case KvDtype::kBf16:
      return __uint_as_float(static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(row)[i])
                             << 16);
    case KvDtype::kQ8_0:
      return static_cast<float>(reinterpret_cast<const int8_t*>(row)[i]) * scale;
  }
  return 0.0f;
}

// A (slot, head) row of K or V, read element by element as f32.
struct RowReader {
  const uint8_t* row;
  float scale;
  KvDtype dtype;
  __device__ __forceinline__ float operator[](int32_t i) const {
    return WidenElement(dtype, row, i, scale);
  }
};

__device__ __forceinline__ RowReader ReadRow(const KvPages& kv, int32_t slot, int32_t head,
                                             bool v) {
  const float scale = kv.dtype == KvDtype::kQ8_0 ? *ScaleAt(kv, slot, head, v) : 1.0f;
  return RowReader{RowBytesAt(kv, slot, head, v), scale, kv.dtype};
}
__device__ __forceinline__ RowReader KRow(const KvPages& kv, int32_t slot, int32_t head) {
  return ReadRow(kv, slot, head, false);
}
__device__ __forceinline__ RowReader VRow(const KvPages& kv, int32_t slot, int32_t head) {
  return ReadRow(kv, slot, head, true);
}

// K[slot][head][i] and V[slot][head][i] as f32.
__device__ __forceinline__ float LoadK(const KvPages& kv, int32_t slot, int32_t head, int32_t i) {
  return KRow(kv, slot, head)[i];
}
__device__ __forceinline__ float LoadV(const KvPages& kv, int32_t slot, int32_t head, int32_t i) {
  return VRow(kv, slot, head)[i];
}

}  // namespace restkv::kernels::cuda
