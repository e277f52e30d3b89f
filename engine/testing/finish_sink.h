// FinishSink: a RequestSink for engine tests that waits for the request's
// end and remembers its summary and when it came.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "engine/request_sink.h"

namespace restkv::engine {

class FinishSink final : public RequestSink {
 public:
  using Clock = std::chrono::steady_clock;

  void OnTokens(const TokenDelta&) override {}
  void OnFinish(const RequestSummary& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    summary_ = s;
    done_ = true;
    at_ = Clock::now();
    cv_.notify_all();
  }
  RequestSummary Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    return summary_;
  }
  Clock::time_point at() {
    std::lock_guard<std::mutex> lock(mu_);
    return at_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  RequestSummary summary_;
  Clock::time_point at_;
};

}  // namespace restkv::engine
