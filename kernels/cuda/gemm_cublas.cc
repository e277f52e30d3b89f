// GemmBf16 (launch.h) on a GPU: one cublasGemmEx, bf16 inputs, fp32
// accumulation and output (tensor cores).
#include <cublas_v2.h>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_error.h"
#include "kernels/cuda/launch.h"

namespace restkv::kernels::cuda {

absl::Status GemmBf16(BlasHandle blas, const Bf16Bits* w, int64_t rows, int64_t cols,
                      const Bf16Bits* x, int64_t m, float* y, cudaStream_t stream) {
  constexpr int64_t kMax = 0x7fffffff;
  if (rows <= 0 || cols <= 0 || m <= 0 || rows > kMax || cols > kMax || m > kMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("GemmBf16: bad sizes ", rows, "x", cols, ", m ", m));
  }
  if (const cublasStatus_t st = cublasSetStream(blas, stream); st != CUBLAS_STATUS_SUCCESS) {
    return absl::InternalError(absl::StrCat("cublasSetStream: ", CublasStatusName(st)));
  }
  // Row-major y[m][rows] = x[m][cols] · Wᵀ is column-major
  // yᵀ (rows x m) = W (rows x cols, stored column-major as cols x rows: op T)
  //                 · xᵀ (cols x m, stored column-major as is: op N).
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t st =
      cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(m),
                   static_cast<int>(cols), &alpha, w, CUDA_R_16BF, static_cast<int>(cols), x,
                   CUDA_R_16BF, static_cast<int>(cols), &beta, y, CUDA_R_32F,
                   static_cast<int>(rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) {
    return absl::InternalError(absl::StrCat("cublasGemmEx: ", CublasStatusName(st)));
  }
  return absl::OkStatus();
}

}  // namespace restkv::kernels::cuda
