// GenerationPlan: a validated completions or chat request turned into what
// the engine needs — token ids per prompt and SamplingParams per choice —
// with every check that needs the model done here: chat template rendering,
// tokenization, vocabulary range of token ids, and the context length.
//
//   CompletionRequest / ChatRequest  ──Plan*──>  GenerationPlan  ──GenerationCall──> engine
//
// Choices: prompt p's j-th choice has index p * n + j (as vLLM numbers them)
// and, when the request has a seed, seed + j, so the n choices differ and
// the same request is reproducible.
// max_tokens: when the request leaves it unset (chat), it becomes
// max_model_len - prompt_len for each prompt, as vLLM does, capped to the
// most the KV pool can hold for that prompt under the request's KV policy
// (PlanContext::max_tokens_that_fit), so a server whose pool is smaller than
// one full context still answers such requests instead of refusing them.
// truncate_prompt_tokens keeps the last N tokens of each prompt (after the
// chat template, for chat), before the length checks; N > max_model_len is
// a 400 naming it, as in vLLM.
//
// Errors (all InvalidArgument with the param payload of api_error.h):
// "prompt"/"messages" for an empty prompt, a token id outside the
// vocabulary, a prompt as long as the context ("This model's maximum context
// length is C tokens. However, your prompt has P tokens."); "max_tokens"
// when prompt + max_tokens exceeds the context (naming all three numbers);
// "messages" when the chat template rejects the conversation or the model
// has none; "kv_policy" / "kv_budget" for an unknown policy or a policy
// configuration the engine refuses; the structured-output field
// (response_format, guided_*, ...) for a schema, regex or grammar that does
// not compile, with the compiler's reason.
//
// Thread safety: pure functions over a const Model (whose tokenizer is
// thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/eviction/policy_config.h"
#include "engine/model/model.h"
#include "engine/sampling/sampling_params.h"
#include "engine/structured/grammar_compiler.h"
#include "server/openai_protocol.h"
#include "server/openai_response.h"

namespace restkv::server {

enum class ApiKind { kCompletion, kChat };

struct PlannedPrompt {
  std::vector<int32_t> tokens;
  std::string echo_text;  // the prompt's text, for completions with echo
};

struct PlannedChoice {
  int32_t index = 0;
  int32_t prompt_index = 0;
  engine::SamplingParams params;  // validated; max_tokens resolved
};

struct GenerationPlan {
  ApiKind kind = ApiKind::kCompletion;
  ResponseMeta meta;
  std::vector<PlannedPrompt> prompts;
  std::vector<PlannedChoice> choices;  // in index order
  bool stream = false;
  bool include_usage = false;
  bool continuous_usage = false;  // stream_options.continuous_usage_stats (with include_usage)
  bool echo = false;
  // Logprobs wanted: completions' `logprobs` / chat's `logprobs`.
  bool logprobs = false;
  int32_t priority = 0;
  engine::KvPolicyConfig kv_policy;  // the server default with the request's overrides
  std::string user;
  // The structured-output constraint every choice follows, or nullptr.
  std::shared_ptr<const engine::structured::CompiledGrammar> grammar;
  // Chat with tools: how the output's tool calls are recognised.
  ChatTools tools;
  ToolCallFormat tool_format = ToolCallFormat::kHermes;
};

// Server-wide limits on what one request may ask for (`restkv serve` flags).
struct RequestLimits {
  // --scheduling-policy priority: requests may set `priority`; otherwise a
  // non-zero priority is refused, so no caller can jump the queue or choose
  // who is preempted (as vLLM with its default fcfs policy).
  bool priority_scheduling = false;
  // --max-tokens-per-request: the most tokens one request may ask to
  // generate, summed over its choices (n x prompts x max_tokens, where an
  // absent max_tokens counts as the rest of the context); 0 = no limit.
  int64_t max_tokens_per_request = 0;
  // MaxInputBytesPerToken of the model's tokenizer (prompt_bound.h): a text
  // prompt, or a rendered conversation, longer than max_model_len x this many
  // bytes cannot fit and is refused before it is tokenized (a huge prompt
  // then costs O(bytes), not a tokenizer run). 0 = no byte pre-check.
  int32_t max_token_bytes = 0;
  // --tool-call-parser: hermes, llama3_json or mistral; "" => chosen from
  // the chat template's markers.
  std::string tool_call_parser;
};

// What every plan needs from the server.
struct PlanContext {
  const engine::Model& model;
  int32_t max_model_len;
  std::string served_model;  // the name echoed in responses
  const engine::KvPolicyConfig& default_kv_policy;
  RequestLimits limits = {};
  // Compiles structured-output constraints (Engine::grammar_compiler());
  // nullptr => a request that sets one is refused.
  engine::structured::GrammarCompiler* grammars = nullptr;
  std::string system_fingerprint;  // ResponseMeta::system_fingerprint
  // Engine::MaxTokensThatFit: the largest max_tokens a prompt of the given
  // length fits in the KV pool with; empty => only max_model_len bounds the
  // default max_tokens.
  std::function<int32_t(int32_t prompt_len, const engine::KvPolicyConfig&)> max_tokens_that_fit;
};

absl::StatusOr<GenerationPlan> PlanCompletion(const CompletionRequest& request,
                                              const PlanContext& context);
absl::StatusOr<GenerationPlan> PlanChat(const ChatRequest& request, const PlanContext& context);

// The prompt ids of a conversation: the model's chat template, tokenized
// with special tokens parsed; BOS added unless the format writes it itself.
// Errors: InvalidArgument (param "messages") when the model has no chat
// format or the template rejects the conversation.
absl::StatusOr<std::vector<int32_t>> TokenizeChat(const engine::Model& model,
                                                  const std::vector<engine::ChatMessage>& messages,
                                                  bool add_generation_prompt,
                                                  bool add_special_tokens);

}  // namespace restkv::server
