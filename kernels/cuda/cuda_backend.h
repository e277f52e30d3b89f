// CudaBackend: the Backend contract (kernels/backend.h) on one NVIDIA GPU.
//
// Data placement:
// - Buffers, weights, activations and KV pages are device memory. Weights of
//   every GGUF type are dequantised on the host (kernels/cpu/dequantize.h)
//   and uploaded as bf16; MatMul rounds the f32 activations to bf16 and calls
//   cuBLAS (bf16 inputs, fp32 accumulation and output, tensor cores).
// - KV pages are in the page layout of backend.h / kv_dtype.h, in the dtype
//   the engine chose (bf16 by default on CUDA: `--kv-cache-dtype auto`);
//   StoreKv rounds rows to it and paged_attention.cu reads it directly;
//   the eviction kernels (kv_page_access.cuh) read f32 pages only, so other
//   dtypes evict through host copies of the pages (engine/kv/layer_evictor.h).
// - Index tables that the engine builds on the host — token ids, positions,
//   KvSlot arrays, AttentionSeq spans and their block tables, GatherRows row
//   lists — are read from HOST memory, as the engine passes them, and
//   uploaded by the backend (UploadRing). RopeParams::freq_factors is device
//   memory (it comes from PrepareVector).
// Execution: one stream; operations are queued and return at once; CopyToHost
// and CopyFromHost synchronise.
// Errors: Create/Allocate/Prepare* return Status. The Backend operations
// return void (kernels/backend.h), so a failure inside one — a launch error,
// a device allocation failure of scratch or upload memory (ResourceExhausted),
// an unsupported shape such as an attention head_dim other than 64 / 128
// (InvalidArgument), a CUDA error surfacing at a synchronisation — is recorded
// as a sticky status(): the first error wins, and every later operation,
// Allocate and Prepare* does nothing (returning that status where it can),
// as a CUDA context does after a sticky error. Callers check status() after
// a step (or after CopyToHost) and fail the affected work; outputs of a step
// that failed are unspecified. Programming errors (null slots, bad grouping)
// still abort (RESTKV_CHECK).
//
// Thread safety: one caller thread at a time, like every Backend.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/cuda_error.h"
#include "kernels/cuda/device_layer_eviction.h"
#include "kernels/cuda/device_memory.h"

namespace restkv::kernels::cuda {

struct CudaBackendOptions {
  int device = 0;
  int host_threads = 1;  // for weight conversion and host_pool()
  // Cap on device memory handed out by Allocate/Prepare* (bytes); 0 = none.
  int64_t memory_limit = 0;
};

class CudaBackend final : public Backend {
 public:
  // Errors: FailedPrecondition when the device does not exist (no GPU);
  // Internal for other CUDA / cuBLAS set-up failures.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(const CudaBackendOptions& options);
  ~CudaBackend() override;

  [[nodiscard]] std::string_view name() const override { return "cuda"; }
  ThreadPool* host_pool() override { return &pool_; }
  [[nodiscard]] bool host_addressable() const override { return false; }
  // Eviction scoring and compaction on the device's own pages
  // (device_layer_eviction.h); its errors are returned, not made sticky.
  LayerEvictionOps* layer_eviction() override { return &eviction_; }
  [[nodiscard]] const DeviceInfo& device_info() const { return info_; }
  [[nodiscard]] cudaStream_t stream() const { return stream_; }
  // Device bytes currently held by Allocate() buffers and prepared weights.
  [[nodiscard]] int64_t allocated_bytes() const { return *allocated_; }
  // Waits for every queued operation (an error it surfaces goes to status()).
  void Synchronize();
  // OK, or the first error of any operation since Create (see the header).
  [[nodiscard]] absl::Status status() const override { return status_; }

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
  // Every KvDtype (the kernels are instantiated for each).
  [[nodiscard]] bool SupportsKvDtype(KvDtype) const override { return true; }

 private:
  CudaBackend(const CudaBackendOptions& options, const DeviceInfo& info, cudaStream_t stream,
              cublasHandle_t cublas);
  // Makes options_.device current on the calling thread (the engine calls
  // from its own thread, whose current device is 0 by default). False when
  // the backend already failed (status()) or binding fails.
  bool Bind();
  // Keeps the first error in status_; returns status_.ok().
  bool Record(absl::Status status);
  // Device memory for weights, counted against the limit.
  absl::StatusOr<void*> AllocateOwned(size_t bytes);
  absl::Status Reserve(size_t bytes);

  // DeviceLayerEviction's memory: Allocate() buffers and synchronous copies
  // on the backend's stream, errors returned as values.
  class EvictionMemory final : public DeviceMemoryOps {
   public:
    explicit EvictionMemory(CudaBackend& backend) : backend_(backend) {}
    absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) override;
    absl::Status Upload(const void* host, void* device, size_t bytes) override;
    absl::Status Download(const void* device, void* host, size_t bytes) override;

   private:
    absl::Status Copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                      const char* what);
    CudaBackend& backend_;
  };

  // Destroys the stream last: the members below queue work on it.
  struct StreamOwner {
    cudaStream_t stream = nullptr;
    ~StreamOwner();
  };

  const CudaBackendOptions options_;
  const DeviceInfo info_;
  StreamOwner stream_owner_;
  cudaStream_t stream_;
  cublasHandle_t cublas_;
  ThreadPool pool_;
  // Shared with live Buffers, which give their bytes back when destroyed.
  std::shared_ptr<int64_t> allocated_ = std::make_shared<int64_t>(0);
  std::vector<DeviceMemory> owned_;  // prepared weights and vectors
  DeviceScratch act_bf16_;           // MatMul activations rounded to bf16
  DeviceScratch attn_partials_;      // split-K partial outputs
  DeviceScratch sparse_patterns_;    // sparse prefill: block mass and keep flags
  UploadRing uploads_;
  EvictionMemory eviction_memory_{*this};
  DeviceLayerEviction eviction_{eviction_memory_, stream_};
  absl::Status status_;
};

}  // namespace restkv::kernels::cuda
