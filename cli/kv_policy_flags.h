// The KV-policy flags every command that runs or plans eviction shares
// (`serve`, `generate`, `plan`): --kv-policy, --kv-budget and --kv-option,
// registered once and turned into an engine::KvPolicyConfig once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "engine/eviction/policy_config.h"

namespace restkv::cli {

struct KvPolicyFlags {
  std::string policy = "full";       // --kv-policy
  int32_t budget = 0;                // --kv-budget: tokens kept per layer and KV head
  std::vector<std::string> options;  // --kv-option key=value[,key=value]
};

// Registers the three flags on `cmd`; `role` starts their help text
// ("Default" for serve, whose requests may override them).
void AddKvPolicyFlags(CLI::App* cmd, KvPolicyFlags* flags, const std::string& role = "");

// The policy the flags name. Errors: InvalidArgument naming the flag (an
// unknown policy or knob, or, with `validate`, a budget the policy rejects).
absl::StatusOr<engine::KvPolicyConfig> BuildKvPolicy(const KvPolicyFlags& flags,
                                                     bool validate = true);

}  // namespace restkv::cli
