// Log-probabilities of the next token, as the OpenAI API reports them.
//
// Computed from the RAW logits (before penalties, temperature, top_k/top_p/
// min_p), which is what OpenAI and vLLM report by default: a logprob says how
// likely the model found the token, not how likely this request's sampler
// made it. log p_i = l_i - (l_max + log Σ_j exp(l_j - l_max)), the
// max-shifted (stable) log-softmax; float exps, summed per block of 256 and
// then in double (relative error of the sum ~1e-7).
//
// Thread safety: pure function.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace restkv::engine {

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;  // natural log, <= 0
};

struct LogprobResult {
  TokenLogprob chosen;            // the sampled token, whether or not it is in `top`
  std::vector<TokenLogprob> top;  // min(top_n, vocab) entries, descending; ties by lower id
};

// logits: [vocab] raw next-token logits. Cost: three vectorised passes over
// the vocabulary (max, Σ exp, top_n with a heap); no allocation of [vocab].
// REQUIRES: 0 <= chosen < logits.size(); top_n >= 0; no NaN and no +inf in
// logits, and at least one finite logit (-inf entries get logprob -inf).
LogprobResult ComputeLogprobs(absl::Span<const float> logits, int32_t chosen, int32_t top_n);

}  // namespace restkv::engine
