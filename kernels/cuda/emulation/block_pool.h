// The execution engine of the CUDA host emulation (device_emulation.h): a
// pool of OS threads, one per CUDA thread of a block, that runs a grid's
// blocks one after another, and the block / warp barriers its threads meet.
//
// Every hand-off (block start, barrier phase, block end) goes through a mutex
// and condition variable, so ThreadSanitizer sees exactly the ordering CUDA
// guarantees: writes before a barrier happen before reads after it, and
// nothing else orders two threads of a block.
//
// Thread safety: a BlockPool is driven by the one thread that launched the
// kernel; its workers touch only their own ThreadContext and the barriers.
#pragma once

#include <cuda_runtime_api.h>
#include <vector_types.h>

#include <array>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace restkv::kernels::cuda::emulation {

// A reusable barrier whose parties can drop out (threads that returned).
class Barrier {
 public:
  void Reset(int parties);
  void ArriveAndWait() { ArriveAndCount(false); }
  // Waits for the phase and returns how many parties arrived with `flag` set.
  int ArriveAndCount(bool flag);
  void ArriveAndDrop();

 private:
  void CompletePhaseLocked();

  std::mutex mu_;
  std::condition_variable cv_;
  int parties_ = 0;
  int arrived_ = 0;
  int flagged_ = 0;
  int last_flagged_ = 0;
  uint64_t phase_ = 0;
};

// The 32 (or fewer, in a partial last warp) lanes of one warp.
class Warp {
 public:
  void Reset(int lanes);
  // Publishes `bits` for `lane`, waits for the warp, returns src_lane's bits.
  uint64_t Exchange(int lane, uint64_t bits, int src_lane);
  unsigned Ballot(int lane, bool predicate);
  // Lanes of the warp (live at the last Reset).
  [[nodiscard]] unsigned live_mask() const { return live_mask_; }

  Barrier barrier;

 private:
  std::array<uint64_t, 32> slots_{};
  unsigned live_mask_ = 0;
};

// What a kernel thread reads through threadIdx / blockIdx / __syncthreads.
struct ThreadContext {
  uint3 thread_idx{};
  uint3 block_idx{};
  dim3 block_dim;
  dim3 grid_dim;
  int lane = 0;
  Barrier* block = nullptr;
  Warp* warp = nullptr;

  // The calling worker's context; null outside a kernel.
  static ThreadContext* Current();
  static void SetCurrent(ThreadContext* context);
};

class BlockPool {
 public:
  explicit BlockPool(dim3 block);
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // Runs `body` on every thread of every block of `grid`, blocks in order
  // x, then y, then z; returns when the last block has finished.
  void RunGrid(dim3 grid, const std::function<void()>& body);

 private:
  void Worker(int flat_id);

  const dim3 block_;
  const int threads_;
  Barrier block_barrier_;
  std::vector<std::unique_ptr<Warp>> warps_;

  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  uint64_t generation_ = 0;  // one per block started
  bool stopping_ = false;
  int finished_ = 0;  // threads done with the current block
  uint3 block_idx_{};
  dim3 grid_;
  const std::function<void()>* body_ = nullptr;
  std::vector<std::thread> workers_;
};

// cudaSuccess, or the error CUDA reports for this configuration.
cudaError_t ValidateLaunch(dim3 grid, dim3 block, size_t dynamic_smem);
// The emulation's counterpart of CUDA's per-thread last error (thread local
// for the same reason CUDA's is: each host thread sees its own launches).
void RecordError(cudaError_t err);
// Returns and clears the calling thread's last error.
cudaError_t TakeLastError();

}  // namespace restkv::kernels::cuda::emulation
