#include "cli/kv_policy_flags.h"

#include "absl/strings/str_cat.h"

namespace restkv::cli {

void AddKvPolicyFlags(CLI::App* cmd, KvPolicyFlags* flags, const std::string& role) {
  const std::string lead = role.empty() ? "" : role + " ";
  cmd->add_option("--kv-policy", flags->policy,
                  lead +
                      "KV eviction during prefill: full, streamingllm, h2o, tova, snapkv, "
                      "pyramidkv, restkv, lacache; +adakv for head-wise budgets (restkv+adakv)")
      ->capture_default_str();
  cmd->add_option(
         "--kv-budget", flags->budget,
         (role.empty() ? "Tokens" : lead + "tokens") + " kept per layer and KV head (0 = keep all)")
      ->capture_default_str();
  cmd->add_option("--kv-option", flags->options,
                  "Policy knob key=value[,key=value] (window, alpha, beta, kernel_size, pooling, "
                  "...)");
}

absl::StatusOr<engine::KvPolicyConfig> BuildKvPolicy(const KvPolicyFlags& flags, bool validate) {
  engine::KvPolicyConfig policy;
  if (absl::Status s = engine::ApplyKvPolicySpec(flags.policy, &policy); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--kv-policy: ", s.message()));
  }
  policy.budget = flags.budget;
  for (const std::string& o : flags.options) {
    if (absl::Status s = engine::ApplyKvPolicyOptions(o, &policy); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--kv-option: ", s.message()));
    }
  }
  if (validate) {
    if (absl::Status s = policy.Validate(); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--kv-policy: ", s.message()));
    }
  }
  return policy;
}

}  // namespace restkv::cli
