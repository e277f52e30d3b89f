// FinishSink: a RequestSink for engine tests that waits for the request's
// end and remembers its summary, when it came, and the token ids streamed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "engine/request_sink.h"

namespace restkv::engine {

class FinishSink final : public RequestSink {
 public:
  using Clock = std::chrono::steady_clock;

  void OnTokens(const TokenDelta& d) override {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.insert(tokens_.end(), d.token_ids.begin(), d.token_ids.end());
  }
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
  std::vector<int32_t> tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  RequestSummary summary_;
  Clock::time_point at_;
  std::vector<int32_t> tokens_;
};

}  // namespace restkv::engine
