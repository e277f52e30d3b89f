// Device memory helpers of the CUDA backend: an owned allocation, a
// grow-only scratch area, and a ring of host-to-device upload slots for the
// small host-side tables operations receive (token ids, positions, KV slots,
// block tables).
//
// All three are tied to one stream; ordering comes from the stream:
// - DeviceScratch::Get may replace its allocation, so it first waits for the
//   stream (work already queued may still read the old one).
// - UploadRing::Upload stages the bytes in pinned memory and queues an async
//   copy; a slot's pinned buffer is reused only after the event recorded
//   behind its previous copy has completed, and its device buffer is reused
//   by a copy queued after every kernel that read it (stream order). So the
//   returned pointer stays valid for any work queued on the stream before
//   kSlots further uploads, and the host data can be freed on return.
// Errors: Get and Upload return ResourceExhausted when device or pinned
// memory runs out, Internal for other CUDA errors (never abort).
// Thread safety: single caller thread, like the backend.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>

#include "absl/status/statusor.h"

namespace restkv::kernels::cuda {

class DeviceMemory {
 public:
  DeviceMemory() = default;
  DeviceMemory(void* ptr, size_t bytes) : ptr_(ptr), bytes_(bytes) {}
  DeviceMemory(DeviceMemory&& other) noexcept;
  DeviceMemory& operator=(DeviceMemory&& other) noexcept;
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  ~DeviceMemory();

  [[nodiscard]] void* get() const { return ptr_; }
  [[nodiscard]] size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class DeviceScratch {
 public:
  explicit DeviceScratch(cudaStream_t stream) : stream_(stream) {}
  // At least `bytes` of device memory, valid until the next Get().
  absl::StatusOr<void*> Get(size_t bytes);

 private:
  cudaStream_t stream_;
  DeviceMemory mem_;
};

class UploadRing {
 public:
  static constexpr int kSlots = 32;

  explicit UploadRing(cudaStream_t stream) : stream_(stream) {}
  ~UploadRing();
  UploadRing(const UploadRing&) = delete;
  UploadRing& operator=(const UploadRing&) = delete;

  // Device copy of host[0, bytes); see the header comment for its lifetime.
  absl::StatusOr<void*> Upload(const void* host, size_t bytes);

  template <class T>
  absl::StatusOr<const T*> UploadArray(const T* host, size_t n) {
    absl::StatusOr<void*> p = Upload(host, n * sizeof(T));
    if (!p.ok()) return p.status();
    return static_cast<const T*>(*p);
  }

 private:
  struct Slot {
    void* pinned = nullptr;
    void* device = nullptr;
    size_t capacity = 0;
    cudaEvent_t copied = nullptr;
  };
  cudaStream_t stream_;
  std::array<Slot, kSlots> slots_{};
  int next_ = 0;
};

}  // namespace restkv::kernels::cuda
