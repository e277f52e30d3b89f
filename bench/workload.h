// Turns trace rows (or synthetic lengths) into ready-to-send requests: the
// prompt text (prompt_builder.h), the lengths the target's context allows,
// and the OpenAI JSON body.
//
// Bodies: stream true with stream_options.include_usage; max_tokens = the
// output length; temperature (default 0); and ignore_eos (a vLLM extension
// restkv and llama.cpp's server honour, others ignore) so the server
// generates exactly the trace's output length.
//
// Context: with max_model_len > 0, a request whose prompt + output (+ a
// margin for BOS and the chat template) does not fit is clamped (prompt cut
// first, output to at most half the context) or skipped, and counted.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/prompt_builder.h"
#include "bench/runner.h"
#include "bench/trace.h"

namespace restkv::bench {

struct SyntheticOptions {
  int32_t input_len = 256;
  int32_t output_len = 128;
  double range_ratio = 0;  // lengths uniform in [len (1 - r), len (1 + r)]
  int64_t count = 100;
  uint64_t seed = 0;
};
std::vector<TraceRequest> SyntheticRequests(const SyntheticOptions& options);

struct WorkloadOptions {
  std::string model;
  bool chat = false;  // /v1/chat/completions bodies
  bool ignore_eos = true;
  double temperature = 0;
  int32_t max_model_len = 0;  // 0 => unknown, no check
  bool skip_long = false;     // else clamp
  bool grpc = false;          // no JSON bodies: GrpcSender builds requests from the prompts
};

struct Workload {
  std::vector<WorkItem> items;  // arrival_s from the trace (0 when it has none)
  int64_t clamped = 0;
  int64_t skipped_long = 0;
};

// `count` measures text prompts (ShareGPT); nullptr => ~4 characters a token.
Workload BuildWorkload(const std::vector<TraceRequest>& requests, const PromptBuilder& builder,
                       const WorkloadOptions& options, const TokenCounter* count);

std::string RequestBody(const WorkloadOptions& options, const std::string& prompt,
                        int32_t max_tokens);

}  // namespace restkv::bench
