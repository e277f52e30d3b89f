// CUDA / cuBLAS error handling for the CUDA backend.
//
// CudaStatus is the one place a cudaError_t becomes an absl::Status; launch
// errors reach it through CheckLaunch (launch_status.h), and CudaBackend keeps
// the first failure of a void Backend operation as its sticky status().
// RESTKV_CUDA_CHECK (abort) is left for device queries that cannot fail on a
// device that exists (cuda_device.cc).
#pragma once

#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include <string>

#include "absl/status/status.h"
#include "common/check.h"

namespace restkv::kernels::cuda {

// OK for cudaSuccess; ResourceExhausted for out-of-memory; InvalidArgument
// for a rejected launch configuration or value; Internal otherwise, naming
// `what` and the error.
absl::Status CudaStatus(cudaError_t err, const std::string& what);

const char* CublasStatusName(cublasStatus_t status);

}  // namespace restkv::kernels::cuda

#define RESTKV_CUDA_CHECK(expr)                                        \
  do {                                                                 \
    const cudaError_t restkv_cuda_err_ = (expr);                       \
    RESTKV_CHECK(restkv_cuda_err_ == cudaSuccess)                      \
        << #expr << ": " << cudaGetErrorName(restkv_cuda_err_) << " (" \
        << cudaGetErrorString(restkv_cuda_err_) << ")";                \
  } while (false)

#define RESTKV_CUBLAS_CHECK(expr)                                                         \
  do {                                                                                    \
    const cublasStatus_t restkv_cublas_st_ = (expr);                                      \
    RESTKV_CHECK(restkv_cublas_st_ == CUBLAS_STATUS_SUCCESS)                              \
        << #expr << ": " << ::restkv::kernels::cuda::CublasStatusName(restkv_cublas_st_); \
  } while (false)
