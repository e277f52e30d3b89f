// The policy × budget axis of an evaluation grid, from command-line lists.
//
//   policies  "full,snapkv,restkv"      budgets "128,256"     ratios "0.1,0.5"
//   -> full | snapkv@128 snapkv@256 snapkv@10% snapkv@50% | restkv@128 ...
//
// `full` appears once (no budget). Knob specs "key=value[,key=value]" apply to
// every policy; "policy:key=value[,...]" to that policy only (e.g.
// "restkv:kernel_size=21"). A ratio r gives budget max(1, floor(r * N)) for a
// prompt of N tokens (N = the context, for perplexity).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/eviction/policy_config.h"

namespace restkv::eval {

struct PolicySetting {
  std::string label;              // "full", "restkv@256", "snapkv@10%"
  engine::KvPolicyConfig config;  // budget set unless ratio > 0
  double ratio = 0;               // > 0: budget follows the prompt

  // The configuration for a prompt of num_tokens tokens.
  [[nodiscard]] engine::KvPolicyConfig For(int32_t num_tokens) const;
  [[nodiscard]] std::string PolicyName() const;
};

// Errors: InvalidArgument for an unknown policy, a non-positive budget, a
// ratio outside (0, 1], a malformed knob, a knob for a policy not in the
// list, a setting that fails Validate(), or a non-full policy with neither
// budgets nor ratios.
absl::StatusOr<std::vector<PolicySetting>> BuildPolicyGrid(const std::vector<std::string>& policies,
                                                           const std::vector<int32_t>& budgets,
                                                           const std::vector<double>& ratios,
                                                           const std::vector<std::string>& options);

// "1,2,3" -> {1,2,3}; InvalidArgument naming `what` on malformed input.
absl::StatusOr<std::vector<int32_t>> ParseIntList(const std::string& text, const std::string& what);
absl::StatusOr<std::vector<double>> ParseDoubleList(const std::string& text,
                                                    const std::string& what);

}  // namespace restkv::eval
