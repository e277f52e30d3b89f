// The engine's per-request output channel, and the plain structs it carries.
//
// A RequestSink receives, on the engine thread, at most one
// OnPromptLogprobs(), zero or more OnTokens() calls, then exactly one
// OnFinish(). Implementations must not block
// and must not call back into the Engine synchronously: a network frontend
// posts the event to its own executor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/sampling/finish_reason.h"
#include "engine/sampling/logprobs.h"

namespace restkv::engine {

struct TokenDelta {
  std::vector<int32_t> token_ids;       // new tokens this step (usually one)
  std::string text;                     // new complete UTF-8 text (may be empty)
  std::vector<LogprobResult> logprobs;  // one per token when requested
};

struct RequestSummary {
  FinishReason reason = FinishReason::kLength;
  absl::Status error;       // set when reason == kError
  std::string stop_string;  // the matched stop string, if any
  // The stop_token_ids member (or end-of-generation token other than the
  // model's EOS) that ended it, else -1: vLLM's integer stop_reason.
  int32_t stop_token_id = -1;
  int32_t prompt_tokens = 0;
  // Sampled tokens, the end token that stopped the sequence included (as
  // vLLM counts them), so it can be one more than the tokens delivered.
  int32_t completion_tokens = 0;
  int32_t cached_tokens = 0;   // prompt tokens its first prefill found in the prefix cache
  int32_t kv_tokens_kept = 0;  // cache slots held per layer after prefill (summed over layers / L)
  int32_t kv_tokens_evicted = 0;
  int32_t num_preemptions = 0;
  double queue_ms = 0;  // submit until first scheduled
  double ttft_ms = 0;   // submit until first token
  double e2e_ms = 0;    // submit until finish
};

class RequestSink {
 public:
  virtual ~RequestSink() = default;
  // For requests with prompt_logprobs >= 0: called once, before the first
  // OnTokens; entry i is prompt token i + 1 given the tokens before it.
  virtual void OnPromptLogprobs(const std::vector<LogprobResult>& logprobs) {}
  virtual void OnTokens(const TokenDelta& delta) = 0;
  virtual void OnFinish(const RequestSummary& summary) = 0;
};

}  // namespace restkv::engine
