#include "server/planned_record.h"

#include <utility>

namespace restkv::server {

RecordedRequest PlannedRecord(const GenerationPlan& plan, std::string endpoint) {
  RecordedRequest r;
  if (!plan.prompts.empty()) {
    r.input_length = static_cast<int64_t>(plan.prompts[0].tokens.size());
    r.block_hashes = ChainedBlockHashes(plan.prompts[0].tokens);
  }
  r.endpoint = std::move(endpoint);
  r.n = 1;
  r.stream = plan.stream;
  if (!plan.choices.empty()) {
    const engine::SamplingParams& p = plan.choices[0].params;
    r.temperature = p.temperature;
    r.top_p = p.top_p;
    r.top_k = p.top_k;
    r.max_tokens = p.max_tokens;
    r.ignore_eos = p.ignore_eos;
  }
  r.kv_policy = std::string(engine::KvPolicyName(plan.kv_policy.kind));
  r.kv_budget = plan.kv_policy.budget;
  return r;
}

}  // namespace restkv::server
