// OpenAI request bodies parsed into native structs, at the edge of the
// server. Every field the server understands is type- and range-checked
// here; unknown fields are ignored here, and the routes log each unknown
// field name once at warning level (known_fields.h), as vLLM warns about
// the fields it ignores. Nothing in here
// knows the model: token ids are range-checked, prompts tokenized and lengths
// checked later (generation_plan.h), where the vocabulary and context are
// known.
//
// Errors: every function returns InvalidArgument whose payload names the
// offending field (InvalidParam in api_error.h, e.g. param "top_p",
// "messages[2].content", "prompt[1][0]"), so the client gets a 400 saying
// which field is wrong, the allowed range and the value it sent.
//
// Defaults follow vLLM's OpenAI server: /v1/completions max_tokens 16;
// /v1/chat/completions max_tokens unset (=> the rest of the context, capped
// to what the KV pool holds; generation_plan.h); temperature 1, top_p 1, n 1.
//
// vLLM's extra fields, as vLLM defines them: min_tokens,
// include_stop_str_in_output, skip_special_tokens,
// spaces_between_special_tokens (SamplingParams), truncate_prompt_tokens
// (keep the last N prompt tokens; -1 => max_model_len),
// stream_options.continuous_usage_stats (usage on every chunk, with
// include_usage). logit_bias {"<token id>": bias} has each bias clamped to
// [-100, 100] as vLLM does; a key that is not an integer is a 400.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/jinja/value.h"
#include "engine/sampling/sampling_params.h"
#include "engine/tokenizer/chat_template.h"
#include "server/chat_tools.h"
#include "server/json.h"
#include "server/structured_fields.h"

namespace restkv::server {

// Deepest nesting of arrays/objects a body may have (a guard for recursive
// JSON code; real requests nest 4 levels).
inline constexpr int kMaxJsonDepth = 64;
// Most choices one request may ask for (n), and most stop strings.
inline constexpr int32_t kMaxChoices = 128;
inline constexpr int32_t kMaxStopStrings = 64;

// The sampling fields and extensions shared by completions and chat.
struct GenerationFields {
  // max_tokens is left at SamplingParams' default here; see `max_tokens`.
  engine::SamplingParams params;
  std::optional<int32_t> max_tokens;  // unset => max_model_len - prompt_len
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  // stream_options.continuous_usage_stats: with include_usage, every chunk
  // carries the usage so far.
  bool continuous_usage = false;
  // Keep only the last N prompt tokens (vLLM); -1 => max_model_len; unset => all.
  std::optional<int32_t> truncate_prompt_tokens;
  std::string user;
  int32_t priority = 0;  // extension; lower runs first
  // Extensions: the KV eviction policy name and budget (tokens kept per
  // layer and KV head); unset => the server's default. The name is checked
  // against the engine's policies in generation_plan.h.
  std::optional<std::string> kv_policy;
  std::optional<int32_t> kv_budget;
  // response_format json_object/json_schema, guided_*, structured_outputs
  // (server/structured_fields.h); unset => unconstrained.
  std::optional<StructuredOutput> structured;
};

// One prompt: text, or token ids when the client sent ids.
struct PromptInput {
  bool is_tokens = false;
  std::string text;
  std::vector<int32_t> tokens;
};

struct CompletionRequest {
  std::string model;                 // "" when absent (=> the served model)
  std::vector<PromptInput> prompts;  // >= 1
  bool echo = false;
  int32_t logprobs = -1;  // -1 => none; else top-N alternatives, N in [0, 20]
  GenerationFields gen;
};

struct ChatRequest {
  std::string model;
  // >= 1; roles system/user/assistant/tool; a content given as text parts is
  // their texts joined with "\n" (vLLM).
  std::vector<engine::ChatMessage> messages;
  // The same conversation as the chat template sees it (with tool_calls,
  // tool_call_id and name; server/chat_tools.h).
  engine::jinja::Value template_messages;
  ChatTools tools;  // tools, tool_choice, parallel_tool_calls, functions
  bool logprobs = false;
  int32_t top_logprobs = 0;           // [0, 20]; > 0 needs logprobs (0 without is fine, as vLLM)
  bool add_generation_prompt = true;  // vLLM extension
  // vLLM extensions: continue the last (assistant) message instead of
  // starting a new one (needs add_generation_prompt false); extra template
  // variables.
  bool continue_final_message = false;
  engine::jinja::Value chat_template_kwargs = engine::jinja::Value::Dict();
  GenerationFields gen;
};

// POST /tokenize (vLLM): either `prompt` or `messages`.
struct TokenizeRequest {
  std::string model;
  bool is_chat = false;
  std::string prompt;
  std::vector<engine::ChatMessage> messages;
  bool add_special_tokens = true;  // default true for prompt, false for messages
  bool add_generation_prompt = true;
  bool return_token_strs = false;
};

// POST /detokenize (vLLM).
struct DetokenizeRequest {
  std::string model;
  std::vector<int32_t> tokens;
};

// Parses a request body into a JSON object. InvalidArgument for an empty
// body, malformed JSON (the message has the parser's position), nesting
// deeper than kMaxJsonDepth, or a top-level value that is not an object.
absl::StatusOr<Json> ParseJsonBody(std::string_view body);

// REQUIRES (all four): `body` is a JSON object (from ParseJsonBody).
absl::StatusOr<CompletionRequest> ParseCompletionRequest(const Json& body);
absl::StatusOr<ChatRequest> ParseChatRequest(const Json& body);
absl::StatusOr<TokenizeRequest> ParseTokenizeRequest(const Json& body);
absl::StatusOr<DetokenizeRequest> ParseDetokenizeRequest(const Json& body);

}  // namespace restkv::server
