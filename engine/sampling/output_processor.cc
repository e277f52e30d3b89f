#include "engine/sampling/output_processor.h"

#include <algorithm>

#include "common/check.h"

namespace restkv::engine {

OutputProcessor::OutputProcessor(const Tokenizer& tokenizer, const SamplingParams& params,
                                 int32_t prompt_tokens, int32_t max_total_tokens)
    : tokenizer_(tokenizer),
      params_(params),
      max_output_(std::min(params.max_tokens, max_total_tokens - prompt_tokens)),
      // The output continues the prompt: its first token keeps its space.
      detok_(tokenizer, IncrementalDetokenizer::StripLeadingSpace::kKeep),
      stops_(params.stop) {
  RESTKV_CHECK_GT(max_output_, 0) << "prompt " << prompt_tokens << " of " << max_total_tokens;
}

OutputProcessor::Update OutputProcessor::Push(int32_t token) {
  RESTKV_CHECK(!finished_) << "a token after the end of the sequence";
  Update u;
  const bool stop_id = std::find(params_.stop_token_ids.begin(), params_.stop_token_ids.end(),
                                 token) != params_.stop_token_ids.end();
  if ((!params_.ignore_eos && tokenizer_.IsEndOfGeneration(token)) || stop_id) {
    Finish(FinishReason::kStop, &u);
    return u;
  }
  u.accepted = true;
  ++num_output_;
  StopMatcher::Result r = stops_.Push(detok_.Push(token));
  u.text = std::move(r.text);
  if (r.stopped) {
    u.finished = FinishReason::kStop;
    u.stop_string = std::move(r.matched);
    finished_ = true;
  } else if (num_output_ >= max_output_) {
    Finish(FinishReason::kLength, &u);
  }
  return u;
}

OutputProcessor::Update OutputProcessor::End(FinishReason reason) {
  RESTKV_CHECK(!finished_) << "End after the end of the sequence";
  Update u;
  Finish(reason, &u);
  return u;
}

void OutputProcessor::Finish(FinishReason reason, Update* u) {
  StopMatcher::Result tail = stops_.Push(detok_.Flush());
  u->text += tail.text;
  if (tail.stopped) {
    u->finished = FinishReason::kStop;
    u->stop_string = std::move(tail.matched);
  } else {
    u->text += stops_.Flush();
    u->finished = reason;
  }
  finished_ = true;
}

}  // namespace restkv::engine
