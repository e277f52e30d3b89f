// Arrival schedules for open-loop load: when each request is meant to be
// sent, in seconds from the start of the run.
//
// Gaps are gamma-distributed with shape `burstiness` and mean 1/rate
// (burstiness 1: a Poisson process; < 1 burstier; > 1 more regular), as in
// vLLM's benchmark. A linear ramp-up raises the rate from ramp_start_rate to
// `rate` over the first ramp_up_s seconds: unit-mean gaps are drawn in
// "expected arrivals" space and mapped through the inverse of the integrated
// rate, so the process is an exact time-varying Poisson/gamma process, not
// one rescaled afterwards to fit a duration.
//
// Determinism: the schedule is a pure function of the options (the seed
// included): std::mt19937_64 and libstdc++'s gamma distribution.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/status.h"

namespace restkv::bench {

struct ArrivalOptions {
  double rate = std::numeric_limits<double>::infinity();  // requests/s; inf => all at t=0
  double burstiness = 1.0;
  double ramp_up_s = 0;        // 0 => no ramp
  double ramp_start_rate = 0;  // requests/s at t=0 of the ramp
  uint64_t seed = 0;
};

absl::Status ValidateArrivalOptions(const ArrivalOptions& options);

// Arrival times, non-decreasing, starting after 0: the first `count`
// (count > 0), or all before `duration_s` (duration_s > 0), whichever ends
// first. REQUIRES: ValidateArrivalOptions(options).ok(); count > 0 or
// duration_s > 0; with an infinite rate, count > 0.
std::vector<double> GenerateArrivals(const ArrivalOptions& options, int64_t count,
                                     double duration_s);

// The time by which `expected` arrivals are due under the (ramped) rate:
// the inverse of the integrated rate. Exposed for tests.
double InverseIntegratedRate(const ArrivalOptions& options, double expected);

}  // namespace restkv::bench
