// The one way kernels/cuda/*.cu launch kernels, so the same source builds
// for nvcc and for the host emulation (kernels/cuda/emulation/, selected by
// RESTKV_CUDA_EMULATION):
//
//   RESTKV_LAUNCH(Kernel, grid, block, dynamic_smem, stream)(args...);
//   return CheckLaunch("Kernel");
//
// expands to Kernel<<<grid, block, dynamic_smem, stream>>>(args...) under
// nvcc and to a synchronous emulated launch otherwise. CheckLaunch
// (launch_status.h) turns the launch's error, if any, into a Status.
#pragma once

#if defined(RESTKV_CUDA_EMULATION)
#include "kernels/cuda/emulation/device_emulation.h"
#define RESTKV_LAUNCH(kernel, grid, block, smem, stream) \
  ::restkv::kernels::cuda::emulation::Launch(kernel, grid, block, smem, stream)
#else
#include <cuda_runtime.h>
#define RESTKV_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#endif

#include "kernels/cuda/launch_status.h"
