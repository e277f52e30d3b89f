// The emulated device model itself (device_emulation.h): indices of 3-D
// grids and blocks, barriers with threads that exit early, shuffles, votes,
// atomics and launch validation. Kernels written here go through the same
// RESTKV_LAUNCH macro as kernels/cuda/*.cu.
#include <cstdint>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/kernel_launch.h"

namespace restkv::kernels::cuda {
namespace {

__device__ int FlatThread() {
  return static_cast<int>(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}
__device__ int FlatBlock() {
  return static_cast<int>(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z));
}

// Each block sums its threads' ids through shared memory; every thread then
// checks it sees the full sum (only correct if the barrier waited for all).
__global__ void BlockSumKernel(int* sums, int* mismatches) {
  __shared__ int partial[64];
  const int t = FlatThread();
  const int n = static_cast<int>(blockDim.x * blockDim.y * blockDim.z);
  partial[t] = t + 1000 * FlatBlock();
  __syncthreads();
  int total = 0;
  for (int i = 0; i < n; ++i) total += partial[i];
  __syncthreads();  // nobody overwrites partial[] while others still read it
  if (t == 0) sums[FlatBlock()] = total;
  if (total != n * (n - 1) / 2 + n * 1000 * FlatBlock()) atomicAdd(mismatches, 1);
}

TEST(CudaEmulationTest, BarrierSeesTheWholeBlockOf3dBlocksAndGrids) {
  const dim3 grid(3, 2, 2), block(4, 4, 4);
  std::vector<int> sums(12, -1);
  int mismatches = 0;
  RESTKV_LAUNCH(BlockSumKernel, grid, block, 0, nullptr)(sums.data(), &mismatches);
  ASSERT_TRUE(CheckLaunch("BlockSumKernel").ok());
  EXPECT_EQ(mismatches, 0);
  for (int b = 0; b < 12; ++b) EXPECT_EQ(sums[b], 64 * 63 / 2 + 64 * 1000 * b) << "block " << b;
}

// Threads past `live` return before the barrier; the rest must not hang.
__global__ void EarlyExitKernel(int live, int* out) {
  __shared__ int value;
  const int t = static_cast<int>(threadIdx.x);
  if (t >= live) return;
  if (t == 0) value = 42;
  __syncthreads();
  out[t] = value;
}

TEST(CudaEmulationTest, ThreadsThatReturnLeaveTheBarrier) {
  std::vector<int> out(96, 0);
  RESTKV_LAUNCH(EarlyExitKernel, 1, 96, 0, nullptr)(40, out.data());
  ASSERT_TRUE(CheckLaunch("EarlyExitKernel").ok());
  for (int t = 0; t < 96; ++t) EXPECT_EQ(out[t], t < 40 ? 42 : 0) << t;
}

__global__ void WarpOpsKernel(int* xor_out, int* down_out, int* up_out, int* bcast_out,
                              unsigned* ballot_out, int* any_out, int* all_out, int* count_out) {
  const int t = static_cast<int>(threadIdx.x);
  int v = t;
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  xor_out[t] = v;
  down_out[t] = __shfl_down_sync(0xffffffffu, t * 10, 3);
  up_out[t] = __shfl_up_sync(0xffffffffu, t * 10, 1);
  bcast_out[t] = __shfl_sync(0xffffffffu, t * 7, 5);
  ballot_out[t] = __ballot_sync(0xffffffffu, t % 3 == 0);
  any_out[t] = __any_sync(0xffffffffu, t == 33);
  all_out[t] = __all_sync(0xffffffffu, t < 64);
  count_out[t] = __syncthreads_count(t % 2 == 0);
}

TEST(CudaEmulationTest, ShufflesAndVotesFollowCudaSemantics) {
  constexpr int kThreads = 64;
  std::vector<int> x(kThreads), down(kThreads), up(kThreads), bc(kThreads), any(kThreads),
      all(kThreads), count(kThreads);
  std::vector<unsigned> ballot(kThreads);
  RESTKV_LAUNCH(WarpOpsKernel, 1, kThreads, 0, nullptr)
  (x.data(), down.data(), up.data(), bc.data(), ballot.data(), any.data(), all.data(),
   count.data());
  ASSERT_TRUE(CheckLaunch("WarpOpsKernel").ok());
  for (int t = 0; t < kThreads; ++t) {
    const int warp = t / 32, lane = t % 32;
    EXPECT_EQ(x[t], 32 * 31 / 2 + 32 * 32 * warp) << t;  // butterfly sum of the warp
    EXPECT_EQ(down[t], lane + 3 < 32 ? (t + 3) * 10 : t * 10) << t;
    EXPECT_EQ(up[t], lane >= 1 ? (t - 1) * 10 : t * 10) << t;
    EXPECT_EQ(bc[t], (32 * warp + 5) * 7) << t;
    unsigned want = 0;
    for (int l = 0; l < 32; ++l) want |= ((32 * warp + l) % 3 == 0 ? 1u : 0u) << l;
    EXPECT_EQ(ballot[t], want) << t;
    EXPECT_EQ(any[t], warp == 1 ? 1 : 0) << t;
    EXPECT_EQ(all[t], 1) << t;
    EXPECT_EQ(count[t], kThreads / 2) << t;
  }
}

__global__ void AtomicsKernel(float* fsum, int* isum, int* imax, unsigned* cas_winners) {
  const int t = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  atomicAdd(fsum, 0.5f);
  atomicAdd(isum, t);
  atomicMax(imax, (t * 37) % 101);
  unsigned expected = 0;
  if (atomicCAS(cas_winners, expected, 1u) == 0) atomicAdd(cas_winners, 10u);
}

TEST(CudaEmulationTest, AtomicsAreAtomicAcrossBlocksAndThreads) {
  float fsum = 0;
  int isum = 0, imax = -1;
  unsigned cas = 0;
  RESTKV_LAUNCH(AtomicsKernel, 5, 64, 0, nullptr)(&fsum, &isum, &imax, &cas);
  ASSERT_TRUE(CheckLaunch("AtomicsKernel").ok());
  EXPECT_EQ(fsum, 160.0f);
  EXPECT_EQ(isum, 320 * 319 / 2);
  EXPECT_EQ(imax, 100);
  EXPECT_EQ(cas, 11u);  // exactly one thread won the CAS
}

__global__ void NeverRunsKernel(int* out) { *out = 1; }

TEST(CudaEmulationTest, InvalidLaunchConfigurationsFailWithoutRunning) {
  int out = 0;
  RESTKV_LAUNCH(NeverRunsKernel, 1, 2048, 0, nullptr)(&out);
  EXPECT_EQ(CheckLaunch("NeverRunsKernel").code(), absl::StatusCode::kInvalidArgument);
  RESTKV_LAUNCH(NeverRunsKernel, dim3(1, 70000), 32, 0, nullptr)(&out);
  EXPECT_EQ(CheckLaunch("NeverRunsKernel").code(), absl::StatusCode::kInvalidArgument);
  RESTKV_LAUNCH(NeverRunsKernel, 0, 32, 0, nullptr)(&out);
  EXPECT_EQ(CheckLaunch("NeverRunsKernel").code(), absl::StatusCode::kInvalidArgument);
  RESTKV_LAUNCH(NeverRunsKernel, 1, 32, 1024, nullptr)(&out);  // dynamic shared memory
  EXPECT_EQ(CheckLaunch("NeverRunsKernel").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out, 0);
  // The error was consumed: the next valid launch reports OK.
  RESTKV_LAUNCH(NeverRunsKernel, 1, 1, 0, nullptr)(&out);
  EXPECT_TRUE(CheckLaunch("NeverRunsKernel").ok());
  EXPECT_EQ(out, 1);
}

}  // namespace
}  // namespace restkv::kernels::cuda
