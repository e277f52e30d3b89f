// A shared-memory exchange kernel with and without its __syncthreads(), for
// the ThreadSanitizer stage (scripts/test-sanitizers tsan):
//   restkv_cuda_planted_race racy    -> TSan must report a data race
//   restkv_cuda_planted_race synced  -> TSan must stay silent
// The racy variant is the bug class the barrier checks exist for: a thread
// reads a neighbour's shared-memory slot that nothing orders after the
// neighbour's write.
#include <cstdio>
#include <cstring>
#include <vector>

#include "kernels/cuda/kernel_launch.h"

namespace restkv::kernels::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void RotateThroughSharedKernel(const float* in, bool barrier, float* out) {
  __shared__ float tile[kThreads];
  const int t = static_cast<int>(threadIdx.x);
  const int g = static_cast<int>(blockIdx.x) * kThreads + t;
  tile[t] = in[g] * 2.0f;
  if (barrier) __syncthreads();
  out[g] = tile[(t + 1) % kThreads];
}

}  // namespace
}  // namespace restkv::kernels::cuda

int main(int argc, char** argv) {
  using restkv::kernels::cuda::kThreads;
  if (argc != 2 || (std::strcmp(argv[1], "racy") != 0 && std::strcmp(argv[1], "synced") != 0)) {
    std::fprintf(stderr, "usage: %s racy|synced\n", argv[0]);
    return 2;
  }
  const bool barrier = std::strcmp(argv[1], "synced") == 0;
  constexpr int kBlocks = 4;
  std::vector<float> in(kBlocks * kThreads), out(in.size(), 0.0f);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i);
  RESTKV_LAUNCH(restkv::kernels::cuda::RotateThroughSharedKernel, kBlocks, kThreads, 0, nullptr)
  (in.data(), barrier, out.data());
  if (!restkv::kernels::cuda::CheckLaunch("RotateThroughSharedKernel").ok()) return 1;
  int wrong = 0;
  for (int b = 0; b < kBlocks; ++b) {
    for (int t = 0; t < kThreads; ++t) {
      wrong += out[b * kThreads + t] != in[b * kThreads + (t + 1) % kThreads] * 2.0f;
    }
  }
  std::printf("%s: %d of %zu outputs differ from the reference\n", argv[1], wrong, out.size());
  return barrier && wrong != 0 ? 1 : 0;
}
