// Clock: where components read the time, so tests can give them a fake one.
//
// NowMs() is milliseconds since an arbitrary epoch, monotonic: differences
// are durations, the values themselves mean nothing. SteadyClock() is the
// process's std::chrono::steady_clock; ManualClock only moves when told to
// (tests, and simulations that charge modelled costs).
//
// Thread safety: NowMs() may be called from any thread; ManualClock::Advance
// too (the time is atomic).
#pragma once

#include <atomic>
#include <chrono>

namespace restkv {

class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual double NowMs() const = 0;
};

class SteadyClockImpl final : public Clock {
 public:
  [[nodiscard]] double NowMs() const override {
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// The steady clock. It has no state, so one shared instance is not global
// mutable state.
inline const Clock& SteadyClock() {
  static const SteadyClockImpl clock;
  return clock;
}

class ManualClock final : public Clock {
 public:
  [[nodiscard]] double NowMs() const override { return now_ms_.load(std::memory_order_relaxed); }
  // REQUIRES: ms >= 0.
  void Advance(double ms) {
    double now = now_ms_.load(std::memory_order_relaxed);
    while (!now_ms_.compare_exchange_weak(now, now + ms, std::memory_order_relaxed)) {
    }
  }

 private:
  std::atomic<double> now_ms_{0};
};

}  // namespace restkv
