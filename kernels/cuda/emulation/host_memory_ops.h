// DeviceMemoryOps over host memory, for running DeviceLayerEviction on the
// host emulation (device pointers are host pointers there). Test-only.
#pragma once

#include <cstring>
#include <memory>
#include <vector>

#include "kernels/cuda/device_layer_eviction.h"

namespace restkv::kernels::cuda::emulation {

class HostMemoryOps final : public DeviceMemoryOps {
 public:
  absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) override {
    ++allocations_;
    return std::unique_ptr<Buffer>(new HostBuffer(bytes));
  }
  absl::Status Upload(const void* host, void* device, size_t bytes) override {
    uploaded_bytes_ += bytes;
    std::memcpy(device, host, bytes);
    return absl::OkStatus();
  }
  absl::Status Download(const void* device, void* host, size_t bytes) override {
    downloaded_bytes_ += bytes;
    std::memcpy(host, device, bytes);
    return absl::OkStatus();
  }
  [[nodiscard]] size_t uploaded_bytes() const { return uploaded_bytes_; }
  [[nodiscard]] size_t downloaded_bytes() const { return downloaded_bytes_; }
  [[nodiscard]] int allocations() const { return allocations_; }

 private:
  class HostBuffer final : public Buffer {
   public:
    explicit HostBuffer(size_t bytes) : bytes_(bytes), data_((bytes + 7) / 8) {}
    void* data() override { return data_.data(); }
    size_t size_bytes() const override { return bytes_; }

   private:
    size_t bytes_;
    std::vector<double> data_;  // 8-byte aligned
  };
  size_t uploaded_bytes_ = 0;
  size_t downloaded_bytes_ = 0;
  int allocations_ = 0;
};

}  // namespace restkv::kernels::cuda::emulation
