#include "eval/policy_grid.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace restkv::eval {

engine::KvPolicyConfig PolicySetting::For(int32_t num_tokens) const {
  engine::KvPolicyConfig c = config;
  if (ratio > 0) {
    c.budget = std::max<int32_t>(1, static_cast<int32_t>(std::floor(ratio * num_tokens)));
  }
  return c;
}

std::string PolicySetting::PolicyName() const { return engine::KvPolicySpecName(config); }

absl::StatusOr<std::vector<int32_t>> ParseIntList(const std::string& text,
                                                  const std::string& what) {
  std::vector<int32_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t v;
    if (!absl::SimpleAtoi(part, &v)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: '%s' is not an integer", what, std::string(part)));
    }
    out.push_back(v);
  }
  return out;
}

absl::StatusOr<std::vector<double>> ParseDoubleList(const std::string& text,
                                                    const std::string& what) {
  std::vector<double> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    double v;
    if (!absl::SimpleAtod(part, &v) || !std::isfinite(v)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: '%s' is not a number", what, std::string(part)));
    }
    out.push_back(v);
  }
  return out;
}

absl::StatusOr<std::vector<PolicySetting>> BuildPolicyGrid(
    const std::vector<std::string>& policies, const std::vector<int32_t>& budgets,
    const std::vector<double>& ratios, const std::vector<std::string>& options) {
  if (policies.empty()) return absl::InvalidArgumentError("no policies given");
  for (int32_t b : budgets) {
    if (b < 1)
      return absl::InvalidArgumentError(absl::StrFormat("budget %d must be at least 1", b));
  }
  for (double r : ratios) {
    if (!(r > 0 && r <= 1))
      return absl::InvalidArgumentError(absl::StrFormat("kv ratio %g must be in (0, 1]", r));
  }
  // (kind, adaptive) per entry; "restkv" and "restkv+adakv" are two entries.
  std::vector<std::pair<engine::KvPolicyKind, engine::AdaptiveBudget>> entries;
  std::vector<engine::KvPolicyKind> kinds;
  for (const std::string& name : policies) {
    engine::KvPolicyConfig parsed;
    if (absl::Status s = engine::ApplyKvPolicySpec(name, &parsed); !s.ok()) return s;
    const std::pair entry{parsed.kind, parsed.adaptive};
    if (std::find(entries.begin(), entries.end(), entry) == entries.end()) entries.push_back(entry);
    if (std::find(kinds.begin(), kinds.end(), parsed.kind) == kinds.end()) {
      kinds.push_back(parsed.kind);
    }
  }
  // Split knob specs into global ones and per-policy ones.
  std::vector<std::pair<std::string, std::string>> scoped;  // policy name ("" = all), spec
  for (const std::string& o : options) {
    const size_t colon = o.find(':');
    const size_t eq = o.find('=');
    if (colon != std::string::npos && (eq == std::string::npos || colon < eq)) {
      auto k = engine::ParseKvPolicy(o.substr(0, colon));
      if (!k.ok()) return k.status();
      if (std::find(kinds.begin(), kinds.end(), *k) == kinds.end()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("kv option '%s' names a policy not in the grid", o));
      }
      scoped.emplace_back(std::string(engine::KvPolicyName(*k)), o.substr(colon + 1));
    } else {
      scoped.emplace_back("", o);
    }
  }
  std::vector<PolicySetting> out;
  for (const auto& [kind, adaptive] : entries) {
    engine::KvPolicyConfig base;
    base.kind = kind;
    const std::string policy_name(engine::KvPolicyName(kind));
    for (const auto& [who, spec] : scoped) {
      if (!who.empty() && who != policy_name) continue;
      if (absl::Status s = engine::ApplyKvPolicyOptions(spec, &base); !s.ok()) return s;
    }
    if (adaptive == engine::AdaptiveBudget::kAdaKv) base.adaptive = adaptive;
    const std::string name = engine::KvPolicySpecName(base);
    if (kind == engine::KvPolicyKind::kFull) {
      base.budget = 0;
      out.push_back({"full", base, 0});
      continue;
    }
    if (budgets.empty() && ratios.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("policy %s needs --budgets or --kv-ratios", name));
    }
    for (int32_t b : budgets) {
      PolicySetting s{absl::StrFormat("%s@%d", name, b), base, 0};
      s.config.budget = b;
      if (absl::Status st = s.config.Validate(); !st.ok()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: %s", s.label, std::string(st.message())));
      }
      out.push_back(s);
    }
    for (double r : ratios) {
      PolicySetting s{absl::StrFormat("%s@%g%%", name, r * 100), base, r};
      s.config.budget = 1 << 20;  // validated again per prompt
      if (absl::Status st = s.config.Validate(); !st.ok()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: %s", s.label, std::string(st.message())));
      }
      out.push_back(s);
    }
  }
  return out;
}

}  // namespace restkv::eval
