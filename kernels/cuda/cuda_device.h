// Whether a CUDA device is usable, and what it is. Never aborts: on a
// machine without a driver or GPU (CI) DeviceCount() is 0.
#pragma once

#include <cstdint>
#include <string>

namespace restkv::kernels::cuda {

// Devices the CUDA runtime can use; 0 when there is no driver or no GPU.
int DeviceCount();

struct DeviceInfo {
  std::string name;
  int sm_count = 0;
  int compute_major = 0, compute_minor = 0;
  int64_t total_memory = 0;  // bytes
  int64_t free_memory = 0;   // bytes, at the time of the query
  // Peak DRAM bandwidth from the memory clock and bus width (bytes/s); 0 if
  // the runtime does not report them.
  double peak_bandwidth = 0;
};

// REQUIRES: 0 <= device < DeviceCount().
DeviceInfo GetDeviceInfo(int device);

}  // namespace restkv::kernels::cuda
