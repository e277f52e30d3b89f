#include "common/thread_pool.h"

#include <immintrin.h>
#include <sched.h>

#include <algorithm>

#include "common/check.h"

namespace restkv {
namespace {

constexpr int kSpinIterations = 1 << 15;
// Past this many pauses a waiter also yields its core: on an oversubscribed
// machine the thread it waits for may need it.
constexpr int kYieldAfter = 1 << 10;

inline void CpuRelax(int spin) {
  if (spin < kYieldAfter) {
    _mm_pause();
  } else {
    sched_yield();
  }
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) : num_threads_(num_threads) {
  RESTKV_CHECK_GE(num_threads, 1);
  ranges_.resize(num_threads);
  for (int i = 1; i < num_threads; ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    generation_.fetch_add(1, std::memory_order_release);
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::ParallelFor(int64_t n, const RangeFn& fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t num_grains = (n + grain - 1) / grain;
  const int active = static_cast<int>(std::min<int64_t>(num_threads_, num_grains));
  if (active <= 1) {
    fn(0, n, 0);
    return;
  }
  for (int i = 0; i < num_threads_; ++i) {
    if (i < active) {
      const int64_t g0 = num_grains * i / active, g1 = num_grains * (i + 1) / active;
      ranges_[i] = {std::min(n, g0 * grain), std::min(n, g1 * grain)};
    } else {
      ranges_[i] = {0, 0};
    }
  }
  fn_ = &fn;
  pending_.store(num_threads_ - 1, std::memory_order_relaxed);
  {
    // The lock orders this increment against a worker that is about to sleep.
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  work_cv_.notify_all();
  fn(ranges_[0].first, ranges_[0].second, 0);
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) CpuRelax(spin);
  fn_ = nullptr;
}

void ThreadPool::WorkerLoop(int thread_idx) {
  uint64_t seen = 0;
  while (true) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      CpuRelax(spin);
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load()) return;
    const auto range = ranges_[thread_idx];
    if (range.first < range.second) (*fn_)(range.first, range.second, thread_idx);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

int DefaultThreadCount() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    return std::max(1, CPU_COUNT(&set));
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace restkv
