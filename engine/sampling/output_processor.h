// OutputProcessor: what one sequence's sampled tokens become — the text to
// stream — and the one place that decides when the sequence ends. Both the
// serving engine (engine/engine.h) and the single-request Generator
// (engine/generator.h) feed it every sampled token.
//
// A sequence ends, in this order of checks, when the sampled token is
//   - an end-of-generation token (unless ignore_eos) or one of
//     stop_token_ids: kStop, the token is not part of the output (its text
//     is, with include_stop_str_in_output), but it is counted in
//     num_generated() as vLLM counts it in completion_tokens;
//   - the end of a stop string: kStop, the text stops before the match (after
//     it, with include_stop_str_in_output);
//   - the max_tokens-th output token, or the one that fills the context
//     (prompt + output == max_total_tokens): kLength, unless the held-back
//     tail then completes a stop string (kStop).
// min_tokens: SuppressEnd() masks the end tokens until min_tokens tokens are
// out, and the text of those first tokens is not searched for stop strings
// (a stop string that straddles token min_tokens is not found; vLLM searches
// a little way back and may find it).
// Text is complete UTF-8, with anything that may still become a stop string
// held back until it cannot (StopMatcher), and flushed when the sequence ends.
//
// Thread safety: none (one owner). The tokenizer must outlive the processor;
// the parameters are copied.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/types/span.h"
#include "engine/sampling/finish_reason.h"
#include "engine/sampling/sampling_params.h"
#include "engine/sampling/stop_matcher.h"
#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"

namespace restkv::engine {

class OutputProcessor {
 public:
  // REQUIRES: params valid; 0 < prompt_tokens < max_total_tokens.
  OutputProcessor(const Tokenizer& tokenizer, const SamplingParams& params, int32_t prompt_tokens,
                  int32_t max_total_tokens);

  struct Update {
    bool accepted = false;                 // the token is part of the output (not an EOS / stop id)
    std::string text;                      // new text to stream (may be empty)
    std::optional<FinishReason> finished;  // set when the sequence ended with this token
    std::string stop_string;               // the stop string that ended it, if one did
    // The token that ended it when that was a stop_token_ids member or an
    // end-of-generation token other than the model's EOS (vLLM reports
    // stop_reason null for the EOS itself); -1 otherwise.
    int32_t stop_token_id = -1;
  };
  // Feeds the next sampled token. REQUIRES: the sequence has not ended.
  Update Push(int32_t token);

  // Ends the sequence now with `reason` (kStop unless the flushed tail
  // completes a stop string, which also gives kStop), flushing held text, as
  // when a structured output's grammar is complete. REQUIRES: not finished.
  Update End(FinishReason reason);

  // Before min_tokens output tokens: sets the logits of the tokens that
  // would end the sequence (end-of-generation unless ignore_eos, and
  // stop_token_ids) to -inf, unless that would leave no token at all (a
  // grammar that allows only an end). A no-op afterwards.
  void SuppressEnd(absl::Span<float> logits) const;

  [[nodiscard]] int32_t num_output() const { return num_output_; }
  // num_output() plus the end token, if one ended the sequence.
  [[nodiscard]] int32_t num_generated() const { return num_output_ + (ended_by_token_ ? 1 : 0); }
  [[nodiscard]] bool finished() const { return finished_; }

 private:
  // Flushes the detokenizer and the stop matcher into `u` and ends with
  // `reason` (or kStop when the flushed tail completes a stop string).
  void Finish(FinishReason reason, Update* u);
  // Takes a stop-matcher result into `u`; true when it matched a stop string.
  bool TakeStopResult(StopMatcher::Result r, Update* u);

  const Tokenizer& tokenizer_;
  const SamplingParams params_;  // a copy: the caller's may move
  const int32_t max_output_;     // min(max_tokens, max_total_tokens - prompt_tokens)
  IncrementalDetokenizer detok_;
  StopMatcher stops_;
  int32_t num_output_ = 0;
  bool finished_ = false;
  bool ended_by_token_ = false;
};

}  // namespace restkv::engine
