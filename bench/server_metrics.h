// The target's Prometheus /metrics before and after a run, when the target
// is restkv (its metric names start with "restkv:"): counters that explain
// latencies — preemptions, pages released by eviction — as deltas.
//
// Thread safety: pure functions.
#pragma once

#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace restkv::bench {

// Samples of the exposition text whose name starts with `prefix`, keyed by
// "name{labels}"; histogram buckets are left out.
std::map<std::string, double> ParsePrometheus(absl::string_view text, absl::string_view prefix);

// {"before": {...}, "after": {...}, "delta": {...}} over the keys of both.
nlohmann::json MetricsDelta(const std::map<std::string, double>& before,
                            const std::map<std::string, double>& after);

}  // namespace restkv::bench
