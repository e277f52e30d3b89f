#include "engine/sampling/output_processor.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "common/check.h"

namespace restkv::engine {

OutputProcessor::OutputProcessor(const Tokenizer& tokenizer, const SamplingParams& params,
                                 int32_t prompt_tokens, int32_t max_total_tokens)
    : tokenizer_(tokenizer),
      params_(params),
      max_output_(std::min(params.max_tokens, max_total_tokens - prompt_tokens)),
      // The output continues the prompt: its first token keeps its space.
      detok_(tokenizer, IncrementalDetokenizer::StripLeadingSpace::kKeep,
             /*render_special=*/!params.skip_special_tokens, params.spaces_between_special_tokens),
      stops_(params.stop) {
  RESTKV_CHECK_GT(max_output_, 0) << "prompt " << prompt_tokens << " of " << max_total_tokens;
}

OutputProcessor::Update OutputProcessor::Push(int32_t token) {
  RESTKV_CHECK(!finished_) << "a token after the end of the sequence";
  Update u;
  const bool stop_id = std::find(params_.stop_token_ids.begin(), params_.stop_token_ids.end(),
                                 token) != params_.stop_token_ids.end();
  const bool eog = !params_.ignore_eos && tokenizer_.IsEndOfGeneration(token);
  if (eog || stop_id) {
    ended_by_token_ = true;
    if (!(eog && token == tokenizer_.eos_id())) u.stop_token_id = token;
    if (params_.include_stop_str_in_output && TakeStopResult(stops_.Push(detok_.Push(token)), &u)) {
      return u;
    }
    Finish(FinishReason::kStop, &u);
    return u;
  }
  u.accepted = true;
  ++num_output_;
  if (num_output_ <= params_.min_tokens) {
    // Stop strings are looked for only after min_tokens tokens (vLLM).
    u.text = detok_.Push(token);
    if (num_output_ >= max_output_) Finish(FinishReason::kLength, &u);
    return u;
  }
  if (TakeStopResult(stops_.Push(detok_.Push(token)), &u)) return u;
  if (num_output_ >= max_output_) Finish(FinishReason::kLength, &u);
  return u;
}

void OutputProcessor::SuppressEnd(absl::Span<float> logits) const {
  if (num_output_ >= params_.min_tokens) return;
  std::vector<std::pair<int32_t, float>> saved;
  auto mask = [&](int32_t id) {
    if (id < 0 || id >= static_cast<int32_t>(logits.size())) return;
    saved.emplace_back(id, logits[id]);
    logits[id] = -std::numeric_limits<float>::infinity();
  };
  if (!params_.ignore_eos) {
    for (int32_t id : tokenizer_.end_of_generation_ids()) mask(id);
  }
  for (int32_t id : params_.stop_token_ids) mask(id);
  const bool any_left = std::any_of(logits.begin(), logits.end(), [](float l) {
    return l > -std::numeric_limits<float>::infinity();
  });
  if (any_left) return;
  for (auto it = saved.rbegin(); it != saved.rend(); ++it) logits[it->first] = it->second;
}

OutputProcessor::Update OutputProcessor::End(FinishReason reason) {
  RESTKV_CHECK(!finished_) << "End after the end of the sequence";
  Update u;
  Finish(reason, &u);
  return u;
}

bool OutputProcessor::TakeStopResult(StopMatcher::Result r, Update* u) {
  u->text += r.text;
  if (!r.stopped) return false;
  if (params_.include_stop_str_in_output) u->text += r.matched;
  u->finished = FinishReason::kStop;
  u->stop_string = std::move(r.matched);
  finished_ = true;
  return true;
}

void OutputProcessor::Finish(FinishReason reason, Update* u) {
  if (TakeStopResult(stops_.Push(detok_.Flush()), u)) return;
  u->text += stops_.Flush();
  u->finished = reason;
  finished_ = true;
}

}  // namespace restkv::engine
