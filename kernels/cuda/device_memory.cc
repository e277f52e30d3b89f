#include "kernels/cuda/device_memory.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/status_macros.h"
#include "kernels/cuda/cuda_error.h"

namespace restkv::kernels::cuda {

DeviceMemory::DeviceMemory(DeviceMemory&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceMemory& DeviceMemory::operator=(DeviceMemory&& other) noexcept {
  if (this != &other) {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

DeviceMemory::~DeviceMemory() {
  if (ptr_ != nullptr) cudaFree(ptr_);
}

absl::StatusOr<void*> DeviceScratch::Get(size_t bytes) {
  if (bytes <= mem_.bytes() && mem_.get() != nullptr) return mem_.get();
  const size_t grown = std::max(bytes, 2 * mem_.bytes());
  // Queued work may read the old area.
  RESTKV_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream_), "scratch resize"));
  mem_ = DeviceMemory();
  void* ptr = nullptr;
  RESTKV_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&ptr, grown), "scratch cudaMalloc"));
  mem_ = DeviceMemory(ptr, grown);
  return ptr;
}

UploadRing::~UploadRing() {
  cudaStreamSynchronize(stream_);
  for (Slot& s : slots_) {
    if (s.pinned != nullptr) cudaFreeHost(s.pinned);
    if (s.device != nullptr) cudaFree(s.device);
    if (s.copied != nullptr) cudaEventDestroy(s.copied);
  }
}

absl::StatusOr<void*> UploadRing::Upload(const void* host, size_t bytes) {
  Slot& s = slots_[next_];
  if (s.copied == nullptr) {
    RESTKV_RETURN_IF_ERROR(
        CudaStatus(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming), "upload event"));
  }
  // The slot's previous copy must have read its pinned buffer.
  RESTKV_RETURN_IF_ERROR(CudaStatus(cudaEventSynchronize(s.copied), "upload wait"));
  if (bytes > s.capacity || s.device == nullptr) {
    const size_t grown = std::max<size_t>({bytes, 2 * s.capacity, 4096});
    // Kernels queued earlier may still read the old device buffer.
    RESTKV_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream_), "upload resize"));
    if (s.pinned != nullptr) cudaFreeHost(s.pinned);
    if (s.device != nullptr) cudaFree(s.device);
    s.pinned = nullptr;
    s.device = nullptr;
    s.capacity = 0;
    RESTKV_RETURN_IF_ERROR(CudaStatus(cudaMallocHost(&s.pinned, grown), "upload cudaMallocHost"));
    RESTKV_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&s.device, grown), "upload cudaMalloc"));
    s.capacity = grown;
  }
  next_ = (next_ + 1) % kSlots;
  if (bytes == 0) return s.device;
  std::memcpy(s.pinned, host, bytes);
  RESTKV_RETURN_IF_ERROR(CudaStatus(
      cudaMemcpyAsync(s.device, s.pinned, bytes, cudaMemcpyHostToDevice, stream_), "upload copy"));
  RESTKV_RETURN_IF_ERROR(CudaStatus(cudaEventRecord(s.copied, stream_), "upload event record"));
  return s.device;
}

}  // namespace restkv::kernels::cuda
