// CpuBackend: the Backend contract on the host, multi-threaded and vectorised.
//
// - MatMul: Q4_0 / Q4_1 / Q8_0 and Q4_K / Q5_K / Q6_K weights use integer
//   dots against Q8_1 activations: repacked into 16-row panels
//   (packed_gemm.h) where the build and CPU have a kernel path (KernelIsa:
//   AVX-512 VNNI, AVX-VNNI or AVX2), else Q4_0 / Q4_1 / Q8_0 in place on the
//   mmapped file (quant_dot.h); F32 (and F16 / BF16,
//   widened to F32 at load) go through OpenBLAS sgemm; every other GGUF type
//   (and the K-quants without a panel path) is repacked to Q8_0 at load.
//   The kernel path is chosen once, at construction, from the CPU's
//   features; RESTKV_CPU_ISA=avx2 forces the AVX2 path (tests, benchmarks). Work is split over
//   weight rows across the thread pool; OpenBLAS runs single-threaded inside each slice so the two
//   never oversubscribe the cores.
// - Attention reads K/V straight from the paged layout of backend.h.
//
// Thread safety: as Backend — one caller thread at a time. The pool's worker
// threads are internal.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "common/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/packed_gemm.h"
#include "kernels/cpu/quant_dot.h"

namespace restkv::kernels::cpu {

class CpuBackend final : public Backend {
 public:
  // REQUIRES: num_threads >= 1. `pack_weights` false keeps quantised weights
  // in the GGUF layout (the older kernels; benchmarks compare the two).
  explicit CpuBackend(int num_threads, bool pack_weights = true);
  ~CpuBackend() override;

  [[nodiscard]] std::string_view name() const override { return "cpu"; }
  [[nodiscard]] int num_threads() const { return pool_.num_threads(); }
  // The packed kernels' path; nullopt when this build and CPU have none.
  [[nodiscard]] std::optional<KernelIsa> kernel_isa() const { return isa_; }
  ThreadPool& pool() { return pool_; }
  ThreadPool* host_pool() override { return &pool_; }

  absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) override;
  absl::StatusOr<Matrix> PrepareMatrix(GgmlType type, int64_t rows, int64_t cols,
                                       const void* host) override;
  absl::StatusOr<const float*> PrepareVector(GgmlType type, int64_t n, const void* host) override;
  void CopyToHost(const float* src, float* dst, size_t n) override;
  void CopyFromHost(const float* src, float* dst, size_t n) override;
  void CopyDevice(const float* src, float* dst, size_t n) override;
  void GatherRows(const float* src, const int64_t* rows, int64_t num_rows, int64_t width,
                  float* dst) override;

  void MatMul(const Matrix& w, const float* x, int64_t m, float* y) override;
  void Embedding(const Matrix& table, const int32_t* ids, int64_t m, float* out) override;
  void RmsNorm(const float* x, const float* weight, int64_t m, int64_t n, float eps,
               float* y) override;
  void AddBias(float* x, const float* bias, int64_t m, int64_t n) override;
  void Add(float* x, const float* y, int64_t n) override;
  void Rope(float* x, const int32_t* positions, int64_t m, int32_t heads, int32_t head_dim,
            const RopeParams& params) override;
  void SwiGlu(float* gate, const float* up, int64_t n) override;
  void StoreKv(const float* k, const float* v, const KvSlot* slots, int64_t m,
               const KvPageLayout& kv) override;
  void Attention(const float* q, absl::Span<const AttentionSeq> seqs, int32_t heads,
                 const KvPageLayout& kv, float scale, float* out) override;
  // Every KvDtype.
  [[nodiscard]] bool SupportsKvDtype(KvDtype) const override { return true; }

 private:
  void MatMulQuantized(const Matrix& w, const float* x, int64_t m, float* y);
  void MatMulF32(const Matrix& w, const float* x, int64_t m, float* y);
  // `m` with its panel-packed copy attached, where this build and type have one.
  Matrix WithPacked(Matrix m);

  ThreadPool pool_;
  const bool pack_weights_;
  const std::optional<KernelIsa> isa_;
  // Converted weights and vectors, kept alive for the backend's lifetime.
  std::vector<std::unique_ptr<uint8_t[]>> owned_;
  // Panel-packed copies of quantised weights (AVX-512 VNNI builds).
  std::vector<std::unique_ptr<PackedWeights>> packed_;
  // Q8_1 activations for MatMulQuantized, grown on demand.
  Q8Activations x_q8_;
};

}  // namespace restkv::kernels::cpu
