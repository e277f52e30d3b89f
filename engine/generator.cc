#include "engine/generator.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "engine/kv/sequence_kv.h"
#include "engine/sampling/output_processor.h"
#include "engine/sampling/sampler.h"

namespace restkv::engine {
namespace {

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Generator::Generator(Model& model, BlockPool& pool) : model_(model), pool_(pool) {
  RESTKV_CHECK(pool.shape().dtype == model.forward().kv_dtype())
      << "pool of " << kernels::KvDtypeName(pool.shape().dtype) << " pages for a model writing "
      << kernels::KvDtypeName(model.forward().kv_dtype());
}

absl::StatusOr<GenerationResult> Generator::Generate(
    const GenerationRequest& request, const std::function<void(std::string_view)>& on_text) {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& config = model_.config();
  const Tokenizer& tok = model_.tokenizer();
  const SamplingParams& params = request.params;
  RESTKV_RETURN_IF_ERROR(params.Validate(config.vocab_size));
  const int32_t n_prompt = static_cast<int32_t>(request.prompt_tokens.size());
  if (n_prompt == 0) return absl::InvalidArgumentError("the prompt is empty");
  if (n_prompt >= config.context_length) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the prompt has %d tokens; the model's context length is %d", n_prompt,
                        config.context_length));
  }

  SequenceKv kv(pool_, config.num_layers);
  pool_.ResetHighWater();
  GenerationResult result;
  result.prompt_tokens = n_prompt;

  const uint64_t seed = params.seed.has_value() ? *params.seed : std::random_device{}();
  Sampler sampler(params, seed);
  OutputProcessor output(tok, params, n_prompt, config.context_length);
  std::vector<float> logits;
  std::vector<int32_t> step_tokens = request.prompt_tokens;
  int32_t position = 0;
  while (!output.finished()) {
    const int32_t n = static_cast<int32_t>(step_tokens.size());
    if (!kv.Reserve(n)) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("the KV cache is full: %d more tokens need %d pages, %d of %d are free",
                          n, kv.PagesNeeded(n), pool_.num_free(), pool_.num_pages()));
    }
    SequenceInput in{step_tokens, position, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
    in.head_len = kv.head_len();
    in.padding_end = kv.padding_end();
    RESTKV_RETURN_IF_ERROR(model_.forward().Forward({&in, 1}, &logits));
    kv.Commit(n);
    const bool first = position == 0;
    position += n;
    if (first) result.prefill_ms = MsSince(t0);

    output.SuppressEnd(absl::MakeSpan(logits));  // min_tokens
    const int32_t next = sampler.Sample(absl::MakeSpan(logits), request.prompt_tokens);
    if (first) result.ttft_ms = MsSince(t0);
    OutputProcessor::Update u = output.Push(next);
    if (u.accepted) {
      sampler.Accept(next);
      result.tokens.push_back(next);
    }
    if (!u.text.empty()) {
      result.text += u.text;
      if (on_text) on_text(u.text);
    }
    if (u.finished) result.finish_reason = *u.finished;
    step_tokens.assign(1, next);
  }
  result.completion_tokens = static_cast<int32_t>(result.tokens.size());
  result.kv_pages_peak = pool_.high_water();
  result.total_ms = MsSince(t0);
  result.decode_ms = result.total_ms - result.ttft_ms;
  return result;
}

}  // namespace restkv::engine
