// ThreadPool: a fixed set of worker threads for data-parallel loops.
//
// ParallelFor(n, fn) splits [0, n) into one contiguous range per thread and
// calls fn(begin, end, thread_idx) on each, the calling thread taking range 0;
// it returns when all ranges are done. Kernels use it instead of OpenMP so the
// thread count is explicit and owned by whoever owns the backend.
//
// Thread safety: ParallelFor may be called from one thread at a time (the
// engine thread); it is not reentrant. Destruction joins the workers.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace restkv {

class ThreadPool {
 public:
  using RangeFn = std::function<void(int64_t begin, int64_t end, int thread_idx)>;

  // REQUIRES: num_threads >= 1. num_threads == 1 runs everything inline.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  [[nodiscard]] int num_threads() const { return num_threads_; }

  // Runs fn over [0, n) split into num_threads() contiguous ranges, each a
  // multiple of `grain` long (except the last). Blocks until all are done.
  void ParallelFor(int64_t n, const RangeFn& fn, int64_t grain = 1);

 private:
  void WorkerLoop(int thread_idx);

  // NOTE(restkv): a decode step issues hundreds of short loops, so workers
  // spin on `generation_` for a while before sleeping on `work_cv_`; waking a
  // sleeping thread per loop would cost more than the loop itself.
  const int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  // Published to workers by the release-increment of generation_.
  const RangeFn* fn_ = nullptr;
  std::vector<std::pair<int64_t, int64_t>> ranges_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

// Number of threads to use when the user gives none: the cores this process
// may run on.
int DefaultThreadCount();

}  // namespace restkv
