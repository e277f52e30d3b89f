// WorkPool: a few worker threads with a bounded queue, for the CPU-heavy part
// of an HTTP request (JSON parsing, chat-template rendering, tokenization) so
// that it never runs on the I/O threads: a multi-megabyte prompt must not
// delay /health, /live or /metrics on other connections.
//
//   I/O strand ──TrySubmit(task)──> queue (<= max_queued) ──> worker runs task
//                 false when full: the caller answers 503 instead of queueing
//                 without bound.
//
// Workers run at a lower CPU priority (nice +kWorkerNice) than the I/O and
// engine threads: on a machine with fewer cores than busy threads, answering
// probes and stepping the engine must win over preparing new prompts.
// Destruction drops tasks still queued (each is destroyed, not run) and joins
// the workers once their running tasks return.
//
// Thread safety: TrySubmit and queued() may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"

namespace restkv::server {

class WorkPool {
 public:
  using Task = absl::AnyInvocable<void() &&>;

  // REQUIRES: threads >= 1, max_queued >= 1.
  WorkPool(int threads, size_t max_queued);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues `task`; false (and `task` untouched) when max_queued tasks already
  // wait or the pool is shutting down.
  [[nodiscard]] bool TrySubmit(Task& task);

  // Tasks waiting for a worker (not counting running ones).
  [[nodiscard]] size_t queued() const;

  static constexpr int kWorkerNice = 10;

 private:
  void WorkerLoop();

  const size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace restkv::server
