#include "bench/server_metrics.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace restkv::bench {

std::map<std::string, double> ParsePrometheus(absl::string_view text, absl::string_view prefix) {
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#' || !absl::StartsWith(line, prefix)) continue;
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    const absl::string_view name = line.substr(0, space);
    if (absl::StrContains(name, "_bucket")) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(space + 1), &value)) out[std::string(name)] = value;
  }
  return out;
}

nlohmann::json MetricsDelta(const std::map<std::string, double>& before,
                            const std::map<std::string, double>& after) {
  nlohmann::json delta = nlohmann::json::object();
  for (const auto& [k, v] : after) {
    auto it = before.find(k);
    delta[k] = v - (it == before.end() ? 0.0 : it->second);
  }
  return {{"before", before}, {"after", after}, {"delta", delta}};
}

}  // namespace restkv::bench
