#include "engine/sampling/sampling_params.h"

#include <cmath>

#include "absl/strings/str_format.h"

namespace restkv::engine {
namespace {

// True when lo <= x <= hi; false for NaN.
bool InClosed(float x, float lo, float hi) { return x >= lo && x <= hi; }

}  // namespace

absl::Status SamplingParams::Validate(int32_t vocab_size) const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "temperature must be a finite number >= 0 (0 means greedy), got %g", temperature));
  }
  if (!(top_p > 0.0f && top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrFormat("top_p must be in (0, 1], got %g", top_p));
  }
  if (top_k < -1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("top_k must be -1 or 0 (disabled) or >= 1, got %d", top_k));
  }
  if (!InClosed(min_p, 0.0f, 1.0f)) {
    return absl::InvalidArgumentError(absl::StrFormat("min_p must be in [0, 1], got %g", min_p));
  }
  if (!InClosed(presence_penalty, -2.0f, 2.0f)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("presence_penalty must be in [-2, 2], got %g", presence_penalty));
  }
  if (!InClosed(frequency_penalty, -2.0f, 2.0f)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("frequency_penalty must be in [-2, 2], got %g", frequency_penalty));
  }
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "repetition_penalty must be a finite number > 0, got %g", repetition_penalty));
  }
  if (max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_tokens must be >= 1, got %d", max_tokens));
  }
  for (size_t i = 0; i < stop.size(); ++i) {
    if (stop[i].empty()) {
      return absl::InvalidArgumentError(absl::StrFormat("stop[%d] must be a non-empty string", i));
    }
  }
  for (size_t i = 0; i < stop_token_ids.size(); ++i) {
    if (stop_token_ids[i] < 0 || stop_token_ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("stop_token_ids[%d] must be in [0, %d) (the vocabulary), got %d", i,
                          vocab_size, stop_token_ids[i]));
    }
  }
  if (logprobs < -1 || logprobs > kMaxLogprobs) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "logprobs must be in [0, %d], or -1 for none, got %d", kMaxLogprobs, logprobs));
  }
  if (min_tokens < 0 || min_tokens > max_tokens) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "min_tokens must be in [0, max_tokens = %d], got %d", max_tokens, min_tokens));
  }
  for (size_t i = 0; i < logit_bias.size(); ++i) {
    const auto [id, bias] = logit_bias[i];
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "logit_bias token id %d must be in [0, %d) (the vocabulary)", id, vocab_size));
    }
    if (!InClosed(bias, -kMaxLogitBias, kMaxLogitBias)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "logit_bias[%d] must be in [-%g, %g], got %g", id, kMaxLogitBias, kMaxLogitBias, bias));
    }
  }
  return absl::OkStatus();
}

}  // namespace restkv::engine
