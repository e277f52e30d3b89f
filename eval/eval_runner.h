// EvalRunner: runs evaluation requests on an in-process model through the
// engine's own code paths — no server.
//
//   Generate    greedy completion via engine::Engine (Submit + sink), exactly
//               what `restkv serve` and `restkv generate` run
//   Keep        prefill via LlamaModel::Forward with the policy, recording
//               the selection LayerEvictor compacts to (EvictionReport::kept)
//   Perplexity  post-fill teacher forcing: the context is prefilled and
//               evicted by the policy (the same Forward/LayerEvictor path), then
//               the continuation is fed in one forward step against the
//               compressed cache and scored. Scored tokens are never evicted:
//               restkv evicts during prefill only.
//
// Thread safety: one caller thread. The engine (Generate) and the private KV
// pool (Keep, Perplexity) are created on first use, sized for one sequence of
// the model's full context.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/engine.h"
#include "engine/eviction/policy_config.h"
#include "engine/kv/block_pool.h"
#include "engine/kv/layer_evictor.h"
#include "engine/model/model.h"

namespace restkv::eval {

struct EvalAnswer {
  std::string text;
  int32_t prompt_tokens = 0;
  int32_t kv_tokens_kept = 0;  // per layer and KV head (mean over layers)
  double ttft_ms = 0, e2e_ms = 0;
};

struct KeptSelection {
  int32_t num_tokens = 0;
  bool evicted = false;  // false: the policy kept the whole prompt
  // kept[layer][kv_head] = ascending prompt positions.
  std::vector<std::vector<std::vector<int32_t>>> kept;
};

struct PerplexityResult {
  int32_t context_tokens = 0;
  int32_t scored_tokens = 0;
  double nll_sum = 0;                  // natural log, summed over scored tokens
  double perplexity = 0;               // exp(nll_sum / scored_tokens)
  int64_t kv_slots_after_prefill = 0;  // summed over layers, one KV head
};

// -log softmax(logits)[target] in double precision.
double NegLogLikelihood(const float* logits, int32_t vocab, int32_t target);

class EvalRunner {
 public:
  // `model` must outlive the runner.
  explicit EvalRunner(engine::Model& model)
      : model_(model), evictor_(model.config(), model.weights(), model.backend()) {}
  ~EvalRunner();

  // Errors: those of Engine::Submit, or the request's failure.
  absl::StatusOr<EvalAnswer> Generate(const std::vector<int32_t>& prompt,
                                      const engine::KvPolicyConfig& policy, int32_t max_tokens);

  // Errors: InvalidArgument for an empty prompt, one past the context or an
  // invalid policy; ResourceExhausted if the pool cannot be created.
  absl::StatusOr<KeptSelection> Keep(const std::vector<int32_t>& prompt,
                                     const engine::KvPolicyConfig& policy);

  // tokens[0, context) is prefilled under the policy; tokens[context, end)
  // are scored, the first from the prefill's last logits.
  // REQUIRES: 1 <= context < tokens.size() <= the model's context length.
  absl::StatusOr<PerplexityResult> Perplexity(const std::vector<int32_t>& tokens, int32_t context,
                                              const engine::KvPolicyConfig& policy);

 private:
  absl::Status EnsurePool();

  engine::Model& model_;
  engine::LayerEvictor evictor_;  // keeps its W_O factors across calls
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<engine::BlockPool> pool_;
};

}  // namespace restkv::eval
