// The kernel-side description of one layer's eviction (kernels::EvictionPlan,
// kernels/layer_eviction.h) for a policy, so a backend with eviction kernels
// selects exactly what SelectTokens (token_selection.h) would: the same
// budget rule, effective window, temporal weights, pooling and GQA reduction,
// computed by the same functions.
//
// Legend: N = prompt tokens, w = effective window, K_l = candidates kept.
// Pure functions.
#pragma once

#include <cstdint>
#include <optional>

#include "engine/eviction/policy_config.h"
#include "kernels/layer_eviction.h"

namespace restkv::engine {

// The plan of `layer` for a prompt of num_tokens tokens, or nullopt when the
// device kernels do not implement the policy's knobs (metric=before, an
// ablation: the caller scores on the host instead). A layer that keeps
// everything, or only the window, is a kPositions plan.
// REQUIRES: config.Validate() OK; EvictsPrompt(config, num_tokens).
std::optional<kernels::EvictionPlan> MakeEvictionPlan(const KvPolicyConfig& config, int32_t layer,
                                                      int32_t num_layers, int32_t num_tokens);

}  // namespace restkv::engine
