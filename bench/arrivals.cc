#include "bench/arrivals.h"

#include <cmath>
#include <random>

namespace restkv::bench {

absl::Status ValidateArrivalOptions(const ArrivalOptions& o) {
  if (!(o.rate > 0)) return absl::InvalidArgumentError("--request-rate must be > 0");
  if (!(o.burstiness > 0) || !std::isfinite(o.burstiness)) {
    return absl::InvalidArgumentError("--burstiness must be a positive number");
  }
  if (o.ramp_up_s < 0 || !std::isfinite(o.ramp_up_s))
    return absl::InvalidArgumentError("--ramp-up must be >= 0");
  if (o.ramp_up_s > 0 && !std::isfinite(o.rate)) {
    return absl::InvalidArgumentError("--ramp-up needs a finite --request-rate");
  }
  if (o.ramp_start_rate < 0 || (o.ramp_up_s > 0 && o.ramp_start_rate > o.rate)) {
    return absl::InvalidArgumentError("--ramp-start-rate must be in [0, --request-rate]");
  }
  return absl::OkStatus();
}

double InverseIntegratedRate(const ArrivalOptions& o, double expected) {
  if (o.ramp_up_s <= 0 || o.ramp_start_rate == o.rate) return expected / o.rate;
  // Lambda(t) = r0 t + (r - r0) t^2 / (2 R) for t < R; then Lambda(R) + r (t - R).
  const double r0 = o.ramp_start_rate, r = o.rate, R = o.ramp_up_s;
  const double at_ramp_end = (r0 + r) * R / 2;
  if (expected >= at_ramp_end) return R + (expected - at_ramp_end) / r;
  const double a = (r - r0) / (2 * R);  // > 0
  // a t^2 + r0 t - expected = 0, the positive root (written to avoid cancellation).
  return 2 * expected / (r0 + std::sqrt(r0 * r0 + 4 * a * expected));
}

std::vector<double> GenerateArrivals(const ArrivalOptions& o, int64_t count, double duration_s) {
  std::vector<double> out;
  if (!std::isfinite(o.rate)) {
    out.assign(static_cast<size_t>(std::max<int64_t>(count, 0)), 0.0);
    return out;
  }
  std::mt19937_64 rng(o.seed);
  // Unit mean: shape k, scale 1/k.
  std::gamma_distribution<double> gap(o.burstiness, 1.0 / o.burstiness);
  double expected = 0;
  while (count <= 0 || static_cast<int64_t>(out.size()) < count) {
    expected += gap(rng);
    const double t = InverseIntegratedRate(o, expected);
    if (duration_s > 0 && t >= duration_s) break;
    out.push_back(t);
  }
  return out;
}

}  // namespace restkv::bench
