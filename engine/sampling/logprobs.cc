#include "engine/sampling/logprobs.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "engine/sampling/sampling_math.h"

namespace restkv::engine {

LogprobResult ComputeLogprobs(absl::Span<const float> logits, int32_t chosen, int32_t top_n) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  RESTKV_CHECK(chosen >= 0 && chosen < vocab) << "chosen token " << chosen << ", vocab " << vocab;
  RESTKV_CHECK_GE(top_n, 0);

  // log Z = l_max + log Σ exp(l_j - l_max): every exp is in [0, 1], no overflow.
  const float max_logit = MaxOf(logits);
  const double log_z = static_cast<double>(max_logit) + std::log(SumExpShifted(logits, max_logit));
  auto logprob = [&](int32_t id) {
    return static_cast<float>(static_cast<double>(logits[id]) - log_z);
  };

  LogprobResult result;
  result.chosen = {chosen, logprob(chosen)};
  std::vector<int32_t> ids;
  TopNIds(logits, std::min(top_n, vocab), &ids);
  result.top.reserve(ids.size());
  for (int32_t id : ids) result.top.push_back({id, logprob(id)});
  return result;
}

}  // namespace restkv::engine
