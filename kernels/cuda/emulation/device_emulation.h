// Host emulation of the CUDA device model, so the unchanged kernel bodies of
// kernels/cuda/*.cu compile as host C++ and run on the CPU (CI has no GPU).
//
// Contract:
// - A launch (RESTKV_LAUNCH in kernel_launch.h) runs synchronously: blocks one
//   after another, each block's threads as real OS threads of one pool that
//   lives for the whole launch (created once, reused by every block).
// - __syncthreads() is a real barrier over the block's live threads;
//   __syncwarp() and every shuffle / vote are barriers over the warp's live
//   threads (32 consecutive flat thread ids). A thread that returns drops out
//   of both (Volta+ semantics). Masks are ignored: every live lane of the warp
//   must take part, which is how the kernels here use them.
// - __shared__ variables are function statics: blocks never overlap, so one
//   copy serves the running block. Dynamic shared memory is not emulated
//   (a launch asking for it fails with cudaErrorInvalidValue).
// - Launch configurations are validated as the hardware does (block size
//   1..1024, block.z <= 64, grid.y/z <= 65535, no empty grid); an invalid one
//   runs nothing and is reported by TakeLastError(), like cudaGetLastError.
// - bf16 / f16 conversions and float4 / dim3 come from the toolkit's own
//   headers, which provide host definitions for non-CUDA compilers.
// Under -fsanitize=thread every barrier is a mutex / condition variable hand
// off, so ThreadSanitizer sees exactly the happens-before edges CUDA
// guarantees and reports shared-memory races between the block's threads.
//
// Not covered (see kernels/cuda/README-dev.md): cuBLAS, tensor-core and async
// copy instructions, nvcc code generation, occupancy, timing, memory-space
// faults (device pointers are host pointers here).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <vector_functions.h>
#include <vector_types.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <utility>

#include "kernels/cuda/emulation/block_pool.h"

// The toolkit's host_defines.h turns these into attributes g++ does not know.
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __forceinline__
#define __forceinline__ inline
#undef __shared__
#define __shared__ static
#undef __launch_bounds__
#define __launch_bounds__(...)

namespace restkv::kernels::cuda::emulation {

inline const ThreadContext& Self() { return *ThreadContext::Current(); }

// Binds a kernel and its launch configuration; calling the result with the
// kernel's arguments runs the grid (the arguments are copied once, as CUDA
// copies them into the parameter space, and every thread reads that copy).
template <class... Params>
class KernelLaunch {
 public:
  KernelLaunch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t dynamic_smem)
      : kernel_(kernel), grid_(grid), block_(block), dynamic_smem_(dynamic_smem) {}

  template <class... Args>
  void operator()(Args&&... args) const {
    const cudaError_t err = ValidateLaunch(grid_, block_, dynamic_smem_);
    if (err != cudaSuccess) {
      RecordError(err);
      return;
    }
    const std::tuple<Params...> params(static_cast<Params>(std::forward<Args>(args))...);
    BlockPool pool(block_);
    pool.RunGrid(grid_, [&] { std::apply(kernel_, params); });
  }

 private:
  void (*kernel_)(Params...);
  dim3 grid_, block_;
  size_t dynamic_smem_;
};

template <class Stream, class... Params>
KernelLaunch<Params...> Launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                               Stream /*stream: launches run synchronously*/) {
  return KernelLaunch<Params...>(kernel, grid, block, smem);
}

// ---- Warp-level primitives --------------------------------------------------

template <class T>
T ShuffleFromLane(T value, int src_lane) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "shuffles move at most 64 bits");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  const uint64_t got = Self().warp->Exchange(Self().lane, bits, src_lane);
  T out;
  std::memcpy(&out, &got, sizeof(T));
  return out;
}

template <class T>
T AtomicAdd(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_add(value, std::memory_order_relaxed);
}
template <class T>
T AtomicUpdate(T* address, T value, bool (*better)(T, T)) {
  std::atomic_ref<T> ref(*address);
  T old = ref.load(std::memory_order_relaxed);
  while (better(value, old) && !ref.compare_exchange_weak(old, value, std::memory_order_relaxed)) {
  }
  return old;
}
template <class T>
T AtomicCas(T* address, T compare, T value) {
  std::atomic_ref<T>(*address).compare_exchange_strong(compare, value, std::memory_order_relaxed);
  return compare;
}

}  // namespace restkv::kernels::cuda::emulation

#define threadIdx (::restkv::kernels::cuda::emulation::Self().thread_idx)
#define blockIdx (::restkv::kernels::cuda::emulation::Self().block_idx)
#define blockDim (::restkv::kernels::cuda::emulation::Self().block_dim)
#define gridDim (::restkv::kernels::cuda::emulation::Self().grid_dim)
#define warpSize 32

inline void __syncthreads() { ::restkv::kernels::cuda::emulation::Self().block->ArriveAndWait(); }
inline void __syncwarp(unsigned /*mask*/ = 0xffffffffu) {
  ::restkv::kernels::cuda::emulation::Self().warp->barrier.ArriveAndWait();
}

template <class T>
T __shfl_sync(unsigned /*mask*/, T v, int src_lane, int width = 32) {
  const int lane = ::restkv::kernels::cuda::emulation::Self().lane;
  return ::restkv::kernels::cuda::emulation::ShuffleFromLane(
      v, (lane & ~(width - 1)) + (src_lane % width));
}
template <class T>
T __shfl_xor_sync(unsigned /*mask*/, T v, int lane_mask, int width = 32) {
  const int lane = ::restkv::kernels::cuda::emulation::Self().lane;
  const int src = lane ^ lane_mask;
  // Lanes outside the caller's width segment return the caller's own value.
  const bool same_segment = (src & ~(width - 1)) == (lane & ~(width - 1));
  return ::restkv::kernels::cuda::emulation::ShuffleFromLane(v, same_segment ? src : lane);
}
template <class T>
T __shfl_down_sync(unsigned /*mask*/, T v, unsigned delta, int width = 32) {
  const int lane = ::restkv::kernels::cuda::emulation::Self().lane;
  const int src = lane + static_cast<int>(delta);
  const bool same_segment = (src & ~(width - 1)) == (lane & ~(width - 1));
  return ::restkv::kernels::cuda::emulation::ShuffleFromLane(v, same_segment ? src : lane);
}
template <class T>
T __shfl_up_sync(unsigned /*mask*/, T v, unsigned delta, int width = 32) {
  const int lane = ::restkv::kernels::cuda::emulation::Self().lane;
  const int src = lane - static_cast<int>(delta);
  const bool same_segment = src >= 0 && (src & ~(width - 1)) == (lane & ~(width - 1));
  return ::restkv::kernels::cuda::emulation::ShuffleFromLane(v, same_segment ? src : lane);
}
inline unsigned __ballot_sync(unsigned /*mask*/, int predicate) {
  const auto& self = ::restkv::kernels::cuda::emulation::Self();
  return self.warp->Ballot(self.lane, predicate != 0);
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) {
  const auto& self = ::restkv::kernels::cuda::emulation::Self();
  return __ballot_sync(mask, predicate) == self.warp->live_mask();
}
inline int __syncthreads_count(int predicate) {
  return ::restkv::kernels::cuda::emulation::Self().block->ArriveAndCount(predicate != 0);
}

// ---- Atomics (relaxed, as CUDA's; device pointers are host pointers) --------

inline float atomicAdd(float* a, float v) {
  return ::restkv::kernels::cuda::emulation::AtomicAdd(a, v);
}
inline int atomicAdd(int* a, int v) { return ::restkv::kernels::cuda::emulation::AtomicAdd(a, v); }
inline unsigned atomicAdd(unsigned* a, unsigned v) {
  return ::restkv::kernels::cuda::emulation::AtomicAdd(a, v);
}
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
  return ::restkv::kernels::cuda::emulation::AtomicAdd(a, v);
}
inline int atomicMax(int* a, int v) {
  return ::restkv::kernels::cuda::emulation::AtomicUpdate<int>(a, v,
                                                               [](int x, int y) { return x > y; });
}
inline int atomicMin(int* a, int v) {
  return ::restkv::kernels::cuda::emulation::AtomicUpdate<int>(a, v,
                                                               [](int x, int y) { return x < y; });
}
inline unsigned atomicMax(unsigned* a, unsigned v) {
  return ::restkv::kernels::cuda::emulation::AtomicUpdate<unsigned>(
      a, v, [](unsigned x, unsigned y) { return x > y; });
}
inline int atomicCAS(int* a, int c, int v) {
  return ::restkv::kernels::cuda::emulation::AtomicCas(a, c, v);
}
inline unsigned atomicCAS(unsigned* a, unsigned c, unsigned v) {
  return ::restkv::kernels::cuda::emulation::AtomicCas(a, c, v);
}
inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long c,
                                    unsigned long long v) {
  return ::restkv::kernels::cuda::emulation::AtomicCas(a, c, v);
}
inline int atomicExch(int* a, int v) {
  return std::atomic_ref<int>(*a).exchange(v, std::memory_order_relaxed);
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// ---- Device math and bit casts -------------------------------------------

using std::max;
using std::min;
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __uint_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline uint32_t __float_as_uint(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __float_as_int(float f) { return static_cast<int>(__float_as_uint(f)); }
inline float __int_as_float(int i) { return __uint_as_float(static_cast<uint32_t>(i)); }
