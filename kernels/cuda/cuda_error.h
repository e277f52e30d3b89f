// CUDA / cuBLAS error handling for the CUDA backend.
//
// Backend operations cannot fail by contract (kernels/backend.h): a CUDA
// error inside one is a programming or hardware error and aborts with the
// error's name (RESTKV_CUDA_CHECK). Set-up paths turn errors into
// absl::Status values instead (CudaStatus).
#pragma once

#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include <string>

#include "absl/status/status.h"
#include "common/check.h"

namespace restkv::kernels::cuda {

// OK for cudaSuccess; ResourceExhausted for out-of-memory; Internal
// otherwise, naming `what` and the error.
absl::Status CudaStatus(cudaError_t err, const std::string& what);

const char* CublasStatusName(cublasStatus_t status);

}  // namespace restkv::kernels::cuda

#define RESTKV_CUDA_CHECK(expr)                                                            \
  do {                                                                                     \
    const cudaError_t restkv_cuda_err_ = (expr);                                           \
    RESTKV_CHECK(restkv_cuda_err_ == cudaSuccess)                                          \
        << #expr << ": " << cudaGetErrorName(restkv_cuda_err_) << " ("                     \
        << cudaGetErrorString(restkv_cuda_err_) << ")";                                    \
  } while (false)

#define RESTKV_CUBLAS_CHECK(expr)                                                          \
  do {                                                                                     \
    const cublasStatus_t restkv_cublas_st_ = (expr);                                       \
    RESTKV_CHECK(restkv_cublas_st_ == CUBLAS_STATUS_SUCCESS)                               \
        << #expr << ": " << ::restkv::kernels::cuda::CublasStatusName(restkv_cublas_st_); \
  } while (false)
