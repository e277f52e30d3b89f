// The host emulation's side of the launch and GEMM seams (launch_status.h,
// launch.h GemmBf16): what cudaGetLastError and cuBLAS provide on a GPU.
#include <cblas.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/emulation/block_pool.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/launch_status.h"
#include "kernels/fp16.h"

namespace restkv::kernels::cuda {

absl::Status CheckLaunch(const char* kernel) {
  const cudaError_t err = emulation::TakeLastError();
  if (err == cudaSuccess) return absl::OkStatus();
  const std::string msg = absl::StrCat(kernel, ": launch rejected by the emulated device (error ",
                                       static_cast<int>(err), ")");
  if (err == cudaErrorInvalidConfiguration || err == cudaErrorInvalidValue) {
    return absl::InvalidArgumentError(msg);
  }
  return absl::InternalError(msg);
}

absl::Status GemmBf16(BlasHandle /*blas*/, const Bf16Bits* w, int64_t rows, int64_t cols,
                      const Bf16Bits* x, int64_t m, float* y, cudaStream_t /*stream*/) {
  constexpr int64_t kMax = 0x7fffffff;
  if (rows <= 0 || cols <= 0 || m <= 0 || rows > kMax || cols > kMax || m > kMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("GemmBf16: bad sizes ", rows, "x", cols, ", m ", m));
  }
  std::vector<float> wf(static_cast<size_t>(rows * cols)), xf(static_cast<size_t>(m * cols));
  for (size_t i = 0; i < wf.size(); ++i) wf[i] = Bf16ToFloat(w[i]);
  for (size_t i = 0; i < xf.size(); ++i) xf[i] = Bf16ToFloat(x[i]);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(rows),
              static_cast<int>(cols), 1.0f, xf.data(), static_cast<int>(cols), wf.data(),
              static_cast<int>(cols), 0.0f, y, static_cast<int>(rows));
  return absl::OkStatus();
}

}  // namespace restkv::kernels::cuda
