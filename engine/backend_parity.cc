#include "engine/backend_parity.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "common/status_macros.h"
#include "engine/eviction/kept_overlap.h"
#include "engine/eviction/policy_config.h"
#include "engine/kv/block_pool.h"
#include "engine/kv/kv_layer_hook.h"
#include "engine/kv/layer_evictor.h"
#include "engine/kv/sequence_kv.h"

namespace restkv::engine {
namespace {

constexpr int32_t kBlock = 16;

using KeptSets = std::vector<std::vector<std::vector<int32_t>>>;

struct Decoded {
  std::vector<int32_t> greedy;             // argmax of each step's logits
  std::vector<std::vector<float>> logits;  // per step
};

absl::StatusOr<std::unique_ptr<BlockPool>> PoolFor(Model& model, int32_t tokens) {
  const ModelConfig& c = model.config();
  return BlockPool::Create(model.backend(),
                           {c.num_kv_heads, c.head_dim, kBlock, model.forward().kv_dtype()},
                           c.num_layers * (tokens / kBlock + 2));
}

int32_t Argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Prefill of `prompt`, then steps - 1 decode steps fed `forced` (teacher
// forcing) or, when null, the model's own argmax.
absl::StatusOr<Decoded> Decode(Model& model, const std::vector<int32_t>& prompt,
                               const std::vector<int32_t>* forced, int32_t steps) {
  RESTKV_ASSIGN_OR_RETURN(auto pool, PoolFor(model, static_cast<int32_t>(prompt.size()) + steps));
  SequenceKv kv(*pool, model.config().num_layers);
  Decoded out;
  std::vector<int32_t> feed = prompt;
  std::vector<float> logits;
  int32_t pos = 0;
  for (int32_t i = 0; i < steps; ++i) {
    const auto n = static_cast<int32_t>(feed.size());
    if (!kv.Reserve(n)) return absl::ResourceExhaustedError("parity: pool too small");
    SequenceInput in{feed, pos, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
    RESTKV_RETURN_IF_ERROR(model.forward().Forward({&in, 1}, &logits));
    kv.Commit(n);
    pos += n;
    out.greedy.push_back(Argmax(logits));
    out.logits.push_back(logits);
    feed.assign(1, forced != nullptr ? (*forced)[i] : out.greedy.back());
  }
  RESTKV_RETURN_IF_ERROR(model.backend().status());
  return out;
}

absl::StatusOr<KeptSets> Kept(Model& model, const std::vector<int32_t>& prompt,
                              const KvPolicyConfig& policy) {
  RESTKV_ASSIGN_OR_RETURN(auto pool, PoolFor(model, static_cast<int32_t>(prompt.size())));
  SequenceKv kv(*pool, model.config().num_layers);
  EvictionReport report;
  report.record_kept = true;
  LayerEvictor evictor(model.config(), model.weights(), model.backend());
  KvLayerHook hook(kv, policy, evictor, &report);
  SequenceInput in{prompt, 0, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
  in.hook = &hook;
  std::vector<float> logits;
  RESTKV_RETURN_IF_ERROR(model.forward().Forward({&in, 1}, &logits));
  RESTKV_RETURN_IF_ERROR(model.backend().status());
  return report.kept;
}

std::vector<int32_t> RandomPrompt(int32_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> token(0, vocab - 1);
  std::vector<int32_t> prompt(static_cast<size_t>(n));
  for (int32_t& t : prompt) t = token(rng);
  return prompt;
}

}  // namespace

absl::StatusOr<ParityReport> CompareBackends(Model& reference, Model& test,
                                             const ParityOptions& options) {
  const ModelConfig& c = reference.config();
  if (test.config().num_layers != c.num_layers || test.config().vocab_size != c.vocab_size) {
    return absl::InvalidArgumentError("parity: the two models differ in shape");
  }
  ParityReport r;
  const std::vector<int32_t> prompt =
      RandomPrompt(options.prompt_tokens, c.vocab_size, options.seed);
  RESTKV_ASSIGN_OR_RETURN(const Decoded ref,
                          Decode(reference, prompt, nullptr, options.decode_steps));
  RESTKV_ASSIGN_OR_RETURN(const Decoded forced,
                          Decode(test, prompt, &ref.greedy, options.decode_steps));
  for (size_t s = 0; s < ref.logits.size(); ++s) {
    const std::vector<float>& a = ref.logits[s];
    const std::vector<float>& b = forced.logits[s];
    double err = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      err = std::max(err, std::fabs(static_cast<double>(a[i]) - b[i]));
      r.max_abs_logit = std::max(r.max_abs_logit, std::fabs(static_cast<double>(a[i])));
    }
    r.max_abs_logit_error = std::max(r.max_abs_logit_error, err);
    ++r.steps;
    if (forced.greedy[s] == ref.greedy[s]) {
      ++r.top1_agree;
      continue;
    }
    std::vector<float> sorted = a;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
    if (sorted[0] - sorted[1] > 2 * err) ++r.clear_mismatches;
  }
  RESTKV_ASSIGN_OR_RETURN(const Decoded alone, Decode(test, prompt, nullptr, options.decode_steps));
  while (r.greedy_identical < options.decode_steps &&
         alone.greedy[r.greedy_identical] == ref.greedy[r.greedy_identical]) {
    ++r.greedy_identical;
  }

  const std::vector<int32_t> long_prompt =
      RandomPrompt(options.evict_prompt_tokens, c.vocab_size, options.seed + 1);
  for (const std::string& name : options.policies) {
    RESTKV_ASSIGN_OR_RETURN(const KvPolicyKind kind, ParseKvPolicy(name));
    KvPolicyConfig policy;
    policy.kind = kind;
    policy.budget = options.kv_budget;
    RESTKV_RETURN_IF_ERROR(policy.Validate());
    RESTKV_ASSIGN_OR_RETURN(const KeptSets a, Kept(reference, long_prompt, policy));
    RESTKV_ASSIGN_OR_RETURN(const KeptSets b, Kept(test, long_prompt, policy));
    r.kept.push_back({name, MeanJaccard(a, b)});
  }
  return r;
}

}  // namespace restkv::engine
