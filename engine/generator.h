// Generator: runs one request at a time to completion — prefill the prompt,
// then sample and decode token by token — streaming text as it is produced.
//
// This is the simple path: the continuous-batching engine must produce the
// same greedy tokens as Generator does for each request alone.
//
// Thread safety: none; one Generator per thread, sharing nothing mutable
// except the Model and BlockPool it is given (which it uses exclusively
// while Generate() runs).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/kv/block_pool.h"
#include "engine/model/model.h"
#include "engine/request_sink.h"
#include "engine/sampling/sampling_params.h"

namespace restkv::engine {

struct GenerationRequest {
  std::vector<int32_t> prompt_tokens;
  SamplingParams params;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids (the stop token excluded)
  std::string text;             // detokenised, stop string excluded
  FinishReason finish_reason = FinishReason::kLength;
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  double prefill_ms = 0;  // prompt forward pass
  double ttft_ms = 0;     // start until the first token is sampled
  double decode_ms = 0;   // after the first token until the end
  double total_ms = 0;
  int32_t kv_pages_peak = 0;  // pool pages in use at the peak of this request
};

class Generator {
 public:
  // REQUIRES: pool.shape().dtype == model.forward().kv_dtype().
  Generator(Model& model, BlockPool& pool);

  // Streams each new piece of text to on_text (may be null).
  // Errors: InvalidArgument for an empty prompt, a prompt or max_tokens past
  // the context length, or invalid sampling parameters; ResourceExhausted
  // when the KV pool cannot hold the request.
  absl::StatusOr<GenerationResult> Generate(const GenerationRequest& request,
                                            const std::function<void(std::string_view)>& on_text);

 private:
  Model& model_;
  BlockPool& pool_;
};

}  // namespace restkv::engine
