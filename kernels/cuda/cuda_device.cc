#include "kernels/cuda/cuda_device.h"

#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda_error.h"

namespace restkv::kernels::cuda {

int DeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device / no driver" error
    return 0;
  }
  return count;
}

DeviceInfo GetDeviceInfo(int device) {
  DeviceInfo info;
  cudaDeviceProp prop{};
  RESTKV_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  info.name = prop.name;
  info.sm_count = prop.multiProcessorCount;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  info.total_memory = static_cast<int64_t>(prop.totalGlobalMem);
  int current = 0;
  RESTKV_CUDA_CHECK(cudaGetDevice(&current));
  RESTKV_CUDA_CHECK(cudaSetDevice(device));
  size_t free_bytes = 0, total_bytes = 0;
  RESTKV_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  RESTKV_CUDA_CHECK(cudaSetDevice(current));
  info.free_memory = static_cast<int64_t>(free_bytes);
  // cudaDeviceProp lost memoryClockRate in CUDA 13; the attribute remains.
  int clock_khz = 0, bus_bits = 0;
  if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device) == cudaSuccess &&
      cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device) == cudaSuccess) {
    // Double data rate: two transfers per clock.
    info.peak_bandwidth = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0);
  } else {
    cudaGetLastError();
  }
  return info;
}

}  // namespace restkv::kernels::cuda
