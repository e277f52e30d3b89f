// The gRPC Generate request (proto/restkv/v1/generation.proto) turned into
// the HTTP API's request structs, so both frontends validate and plan a
// request with the same code (openai_protocol.h, generation_plan.h) and
// answer the same parameters with the same errors.
//
// Defaults: proto fields left unset take vLLM's defaults exactly as absent
// JSON fields do (max_tokens 16 for text and token ids, the rest of the
// context for chat; add_generation_prompt true).
//
// Errors: InvalidArgument naming the field (max_tokens < 1, empty or too
// many stop strings, no input, an empty conversation), plus every error of
// PlanCompletion / PlanChat (sampling ranges, token ids outside the
// vocabulary, a prompt too long for the context naming both lengths, an
// unknown kv_policy).
//
// Thread safety: pure functions.
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tokenizer/chat_template.h"
#include "restkv/v1/generation.pb.h"
#include "server/generation_plan.h"
#include "server/openai_protocol.h"

namespace restkv::server {

std::vector<engine::ChatMessage> ChatFromProto(const restkv::v1::ChatMessages& chat);
// A chat Generate's tools, tool choice, tool calls in the history,
// chat_template_kwargs and continue_final_message, checked as the HTTP API
// checks them (InvalidArgument naming the problem).
absl::Status ChatToolsFromProto(const restkv::v1::GenerateRequest& r, ChatRequest* chat);

// The sampling fields and extensions, unchecked.
GenerationFields GenerationFieldsFromProto(const restkv::v1::GenerateRequest& request);

// The checks the JSON parser makes and planning assumes: max_tokens >= 1
// when set; at most kMaxStopStrings stop strings, each non-empty.
absl::Status ValidateGenerationFields(const GenerationFields& fields);

// One prompt and one choice (gRPC has no `n`).
absl::StatusOr<GenerationPlan> PlanGrpcGenerate(const restkv::v1::GenerateRequest& request,
                                                const PlanContext& context);

}  // namespace restkv::server
