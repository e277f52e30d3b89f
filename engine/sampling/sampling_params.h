// SamplingParams: how one request turns logits into tokens, and when it stops.
//
// A plain struct filled by the server from the OpenAI request (field names and
// meanings follow vLLM, the server our users compare against) and read by the
// Sampler, the StopMatcher and the engine. Validate() is the one place that
// checks user-provided values; every consumer may assume a validated struct.
//
// Transform order (as vLLM): penalties (repetition, frequency, presence) →
// temperature → top_k → top_p → min_p → draw. See engine/sampling/sampler.h.
//
// Thread safety: a plain value; no internal state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace restkv::engine {

// The most alternatives a request may ask for per token (vLLM's default
// max_logprobs, and OpenAI's top_logprobs limit).
inline constexpr int32_t kMaxLogprobs = 20;
// logit_bias values are clamped to [-kMaxLogitBias, kMaxLogitBias] by the
// frontends (OpenAI's range; vLLM clamps too) and checked by Validate.
inline constexpr float kMaxLogitBias = 100.0f;

struct SamplingParams {
  // 0 => greedy (argmax after penalties; ties go to the lowest id). Values
  // below kGreedyTemperature (sampler.h) are treated as 0, as vLLM does.
  float temperature = 1.0f;
  float top_p = 1.0f;  // (0, 1]; 1 => off
  // 0 or -1 => off; a value >= the vocabulary size is also off. Tokens tied
  // with the k-th largest logit are kept (as vLLM and HF transformers do).
  int32_t top_k = 0;
  float min_p = 0.0f;  // [0, 1]; keeps tokens with p >= min_p * p_max; 0 => off
  // [-2, 2]: subtracted once from the logit of every token that appears in
  // the OUTPUT so far.
  float presence_penalty = 0.0f;
  // [-2, 2]: times the number of times the token appears in the OUTPUT so
  // far, subtracted from its logit.
  float frequency_penalty = 0.0f;
  // > 0: for tokens in the PROMPT or the OUTPUT, a positive logit is divided
  // by it and a non-positive one multiplied by it (once per token id).
  float repetition_penalty = 1.0f;
  // Same seed => same tokens for the same logits. Unset => the engine draws
  // one per request.
  std::optional<uint64_t> seed;
  int32_t max_tokens = 16;  // >= 1
  // Stop strings: generation ends when one appears in the output text; the
  // stop string and anything after it are not returned. Each must be
  // non-empty.
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;  // extra stop ids, each in [0, vocab)
  bool ignore_eos = false;              // keep going past end-of-generation
  // -1 => none; N in [0, kMaxLogprobs] => the sampled token's logprob plus
  // the top-N alternatives, from the raw logits (see engine/sampling/logprobs.h).
  int32_t logprobs = -1;
  // [0, max_tokens]: end-of-generation tokens and stop_token_ids cannot be
  // sampled (their logits are -inf) before this many output tokens, and stop
  // strings are not looked for in the text of those first tokens (vLLM).
  int32_t min_tokens = 0;
  // A matched stop string stays in the text (nothing after it does); a stop
  // token id or end-of-generation token is detokenized into the text (subject
  // to skip_special_tokens).
  bool include_stop_str_in_output = false;
  // Control tokens give no text unless false (then their text, e.g. "<|im_end|>").
  bool skip_special_tokens = true;
  // With skip_special_tokens false: a space between a rendered special token
  // and the text next to it (HF tokenizers' and vLLM's default).
  bool spaces_between_special_tokens = true;
  // (token id in [0, vocab), bias in [-kMaxLogitBias, kMaxLogitBias]), each
  // added to that token's raw logit before every other stage (vLLM's order).
  std::vector<std::pair<int32_t, float>> logit_bias;

  // OK, or InvalidArgument naming the first out-of-range field, its allowed
  // range and the value received. NaN is out of range for every float field.
  // REQUIRES: vocab_size >= 1.
  absl::Status Validate(int32_t vocab_size) const;
};

}  // namespace restkv::engine
