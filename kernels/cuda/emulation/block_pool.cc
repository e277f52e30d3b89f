#include "kernels/cuda/emulation/block_pool.h"

#include <algorithm>
#include <utility>

namespace restkv::kernels::cuda::emulation {
namespace {

thread_local ThreadContext* current_context = nullptr;
thread_local cudaError_t last_error = cudaSuccess;

}  // namespace

ThreadContext* ThreadContext::Current() { return current_context; }
void ThreadContext::SetCurrent(ThreadContext* context) { current_context = context; }

void RecordError(cudaError_t err) {
  if (last_error == cudaSuccess) last_error = err;
}

cudaError_t TakeLastError() { return std::exchange(last_error, cudaSuccess); }

cudaError_t ValidateLaunch(dim3 grid, dim3 block, size_t dynamic_smem) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64) {
    return cudaErrorInvalidConfiguration;
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 ||
      grid.z > 65535) {
    return cudaErrorInvalidConfiguration;
  }
  if (dynamic_smem != 0) return cudaErrorInvalidValue;  // not emulated
  return cudaSuccess;
}

void Barrier::Reset(int parties) {
  std::lock_guard lock(mu_);
  parties_ = parties;
  arrived_ = 0;
  flagged_ = 0;
}

void Barrier::CompletePhaseLocked() {
  last_flagged_ = flagged_;
  arrived_ = 0;
  flagged_ = 0;
  ++phase_;
  cv_.notify_all();
}

int Barrier::ArriveAndCount(bool flag) {
  std::unique_lock lock(mu_);
  const uint64_t phase = phase_;
  flagged_ += flag ? 1 : 0;
  if (++arrived_ == parties_) {
    CompletePhaseLocked();
  } else {
    cv_.wait(lock, [&] { return phase_ != phase; });
  }
  return last_flagged_;
}

void Barrier::ArriveAndDrop() {
  std::lock_guard lock(mu_);
  --parties_;
  if (parties_ > 0 && arrived_ == parties_) CompletePhaseLocked();
}

void Warp::Reset(int lanes) {
  barrier.Reset(lanes);
  live_mask_ = lanes >= 32 ? 0xffffffffu : ((1u << lanes) - 1);
}

uint64_t Warp::Exchange(int lane, uint64_t bits, int src_lane) {
  slots_[lane] = bits;
  barrier.ArriveAndWait();  // every lane has published
  const uint64_t got = (live_mask_ >> (src_lane & 31) & 1u) != 0 ? slots_[src_lane & 31] : bits;
  barrier.ArriveAndWait();  // every lane has read before the slots are reused
  return got;
}

unsigned Warp::Ballot(int lane, bool predicate) {
  slots_[lane] = predicate ? 1 : 0;
  barrier.ArriveAndWait();
  unsigned mask = 0;
  for (int i = 0; i < 32; ++i) {
    if ((live_mask_ >> i & 1u) != 0 && slots_[i] != 0) mask |= 1u << i;
  }
  barrier.ArriveAndWait();
  return mask;
}

BlockPool::BlockPool(dim3 block)
    : block_(block), threads_(static_cast<int>(block.x * block.y * block.z)) {
  const int num_warps = (threads_ + 31) / 32;
  for (int w = 0; w < num_warps; ++w) warps_.push_back(std::make_unique<Warp>());
  workers_.reserve(static_cast<size_t>(threads_));
  for (int t = 0; t < threads_; ++t) workers_.emplace_back([this, t] { Worker(t); });
}

BlockPool::~BlockPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  start_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void BlockPool::RunGrid(dim3 grid, const std::function<void()>& body) {
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        // Every worker finished the previous block: nobody is in a barrier.
        block_barrier_.Reset(threads_);
        for (size_t w = 0; w < warps_.size(); ++w) {
          warps_[w]->Reset(std::min(32, threads_ - 32 * static_cast<int>(w)));
        }
        std::unique_lock lock(mu_);
        block_idx_ = uint3{x, y, z};
        grid_ = grid;
        body_ = &body;
        finished_ = 0;
        ++generation_;
        start_cv_.notify_all();
        done_cv_.wait(lock, [&] { return finished_ == threads_; });
      }
    }
  }
}

void BlockPool::Worker(int flat_id) {
  ThreadContext context;
  context.block_dim = block_;
  context.thread_idx =
      uint3{flat_id % block_.x, (flat_id / block_.x) % block_.y, flat_id / (block_.x * block_.y)};
  context.lane = flat_id % 32;
  context.block = &block_barrier_;
  context.warp = warps_[static_cast<size_t>(flat_id / 32)].get();
  ThreadContext::SetCurrent(&context);
  uint64_t seen = 0;
  for (;;) {
    const std::function<void()>* body = nullptr;
    {
      std::unique_lock lock(mu_);
      start_cv_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) break;
      seen = generation_;
      context.block_idx = block_idx_;
      context.grid_dim = grid_;
      body = body_;
    }
    (*body)();
    block_barrier_.ArriveAndDrop();
    context.warp->barrier.ArriveAndDrop();
    std::lock_guard lock(mu_);
    if (++finished_ == threads_) done_cv_.notify_one();
  }
  ThreadContext::SetCurrent(nullptr);
}

}  // namespace restkv::kernels::cuda::emulation
