#include "kernels/cuda/device_memory.h"

#include <algorithm>
#include <cstring>
#include <utility>

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

void* DeviceScratch::Get(size_t bytes) {
  if (bytes <= mem_.bytes() && mem_.get() != nullptr) return mem_.get();
  const size_t grown = std::max(bytes, 2 * mem_.bytes());
  RESTKV_CUDA_CHECK(cudaStreamSynchronize(stream_));  // queued work may read the old area
  mem_ = DeviceMemory();
  void* ptr = nullptr;
  RESTKV_CUDA_CHECK(cudaMalloc(&ptr, grown));
  mem_ = DeviceMemory(ptr, grown);
  return ptr;
}

UploadRing::UploadRing(cudaStream_t stream) : stream_(stream) {
  for (Slot& s : slots_) {
    RESTKV_CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
  }
}

UploadRing::~UploadRing() {
  cudaStreamSynchronize(stream_);
  for (Slot& s : slots_) {
    if (s.pinned != nullptr) cudaFreeHost(s.pinned);
    if (s.device != nullptr) cudaFree(s.device);
    if (s.copied != nullptr) cudaEventDestroy(s.copied);
  }
}

void* UploadRing::Upload(const void* host, size_t bytes) {
  Slot& s = slots_[next_];
  next_ = (next_ + 1) % kSlots;
  // The slot's previous copy must have read its pinned buffer.
  RESTKV_CUDA_CHECK(cudaEventSynchronize(s.copied));
  if (bytes > s.capacity || s.device == nullptr) {
    const size_t grown = std::max<size_t>({bytes, 2 * s.capacity, 4096});
    // Kernels queued earlier may still read the old device buffer.
    RESTKV_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (s.pinned != nullptr) RESTKV_CUDA_CHECK(cudaFreeHost(s.pinned));
    if (s.device != nullptr) RESTKV_CUDA_CHECK(cudaFree(s.device));
    s.pinned = nullptr;
    s.device = nullptr;
    RESTKV_CUDA_CHECK(cudaMallocHost(&s.pinned, grown));
    RESTKV_CUDA_CHECK(cudaMalloc(&s.device, grown));
    s.capacity = grown;
  }
  if (bytes == 0) return s.device;
  std::memcpy(s.pinned, host, bytes);
  RESTKV_CUDA_CHECK(cudaMemcpyAsync(s.device, s.pinned, bytes, cudaMemcpyHostToDevice, stream_));
  RESTKV_CUDA_CHECK(cudaEventRecord(s.copied, stream_));
  return s.device;
}

}  // namespace restkv::kernels::cuda
