// The status of the kernel launch just issued on this thread.
//
// CheckLaunch must be called right after every launch (kernel_launch.h): it
// reads and clears the runtime's last error (cudaGetLastError on a GPU; the
// emulation's record of an invalid configuration in the host emulation) and
// converts it with CudaStatus, the one place a cudaError_t becomes a Status.
// Errors: InvalidArgument for a launch configuration the device rejects,
// ResourceExhausted for out-of-memory, Internal otherwise.
#pragma once

#include "absl/status/status.h"

namespace restkv::kernels::cuda {

absl::Status CheckLaunch(const char* kernel);

}  // namespace restkv::kernels::cuda
