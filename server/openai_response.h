// OpenAI response bodies and streaming chunks, built from native values.
//
// Shapes (as OpenAI and vLLM send them):
//   completion   {"id": "cmpl-…", "object": "text_completion", "created", "model",
//                 "choices": [{"index", "text", "logprobs", "finish_reason"}], "usage"}
//   chat         {"id": "chatcmpl-…", "object": "chat.completion", …,
//                 "choices": [{"index", "message": {"role": "assistant", "content"},
//                              "logprobs", "finish_reason"}], "usage"}
//   chunks       same ids and object "text_completion" / "chat.completion.chunk";
//                chat choices carry "delta" instead of "message"
//   every body   also "system_fingerprint" (ResponseMeta); every choice of
//                a whole response "stop_reason" (vLLM's extension)
//   usage        {"prompt_tokens", "completion_tokens", "total_tokens",
//                 "kv_tokens_kept", "kv_tokens_evicted"}   (the last two: restkv)
//   logprobs     completions: {"tokens", "token_logprobs", "top_logprobs": [{str: lp}],
//                              "text_offset"} (text_offset in bytes of the choice text)
//                chat: {"content": [{"token", "logprob", "bytes", "top_logprobs":
//                                    [{"token", "logprob", "bytes"}]}]}
// A logprob of -inf (a token the model gives zero probability) is written as
// -9999.0, as vLLM does, since JSON has no infinity.
//
// Thread safety: pure functions, except NewResponseId (thread-safe).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/types/span.h"
#include "engine/sampling/logprobs.h"
#include "engine/tokenizer/tokenizer.h"
#include "server/api_error.h"
#include "server/chat_tools.h"

namespace restkv::server {

struct ResponseMeta {
  std::string id;       // "cmpl-…" / "chatcmpl-…"
  std::string model;    // the served model name
  int64_t created = 0;  // Unix seconds
  // "system_fingerprint" of every response and chunk; "" => null.
  std::string system_fingerprint;
};

// OpenAI's system_fingerprint: names the backend configuration, so a client
// can tell that two answers came from the same one. "fp_" + 16 hex digits of
// a 64-bit FNV-1a hash over `parts` (restkv's version, the model file, the
// settings that change outputs); stable across restarts with the same ones.
std::string SystemFingerprint(const std::vector<std::string>& parts);

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t kv_tokens_kept = 0;
  int64_t kv_tokens_evicted = 0;
  int64_t cached_tokens = 0;  // prompt tokens found in the prefix cache
};

// `prefix` followed by 32 random hex digits, e.g. "cmpl-3f2a…".
std::string NewResponseId(std::string_view prefix);
int64_t UnixSecondsNow();

Json UsageJson(const Usage& usage);

// Completions-format logprobs for generated tokens. *text_offset is the byte
// offset of the first token in the choice's text and is advanced past them.
Json CompletionLogprobsJson(const engine::Tokenizer& tok,
                            absl::Span<const engine::LogprobResult> logprobs, int64_t* text_offset);
// Completions-format logprobs for echoed prompt tokens, every
// token_logprobs / top_logprobs entry null until FillPromptLogprobs (the
// first prompt token stays null, as OpenAI reports it).
Json EchoLogprobsJson(const engine::Tokenizer& tok, absl::Span<const int32_t> tokens,
                      int64_t* text_offset);
// Sets entries 1.. of an EchoLogprobsJson object from the engine's prompt
// logprobs (entry i + 1 from prompt_logprobs[i]).
void FillPromptLogprobs(const engine::Tokenizer& tok,
                        absl::Span<const engine::LogprobResult> prompt_logprobs, Json* echo);
// Appends `more` (same format) to `all`, an object from the two above.
void AppendCompletionLogprobs(Json* all, const Json& more);

// Chat-format entries ({"token", "logprob", "bytes", "top_logprobs"}), one per token.
Json ChatLogprobsContentJson(const engine::Tokenizer& tok,
                             absl::Span<const engine::LogprobResult> logprobs);

struct ChoiceResult {
  int32_t index = 0;
  std::string text;
  Json logprobs;              // null when not requested
  std::string finish_reason;  // "stop" | "length" | "tool_calls" | "function_call"
  Json stop_reason;           // vLLM's: the stop string or stop token id; null otherwise
  // Chat: the tool calls parsed from the output (message.tool_calls, or
  // message.function_call for the legacy functions API); content is null
  // when there are calls and no other text.
  std::vector<ToolCall> tool_calls;
  bool legacy_function_call = false;
};

// vLLM's stop_reason: the matched stop string, else the stop token id (-1:
// none), else null (EOS, length).
Json StopReasonJson(const std::string& stop_string, int32_t stop_token_id);
// Sets "stop_reason" on the (only) choice of a chunk from the two *ChunkJson.
void SetChunkStopReason(Json stop_reason, Json* chunk);

Json CompletionResponseJson(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices,
                            const Usage& usage);
Json ChatResponseJson(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices,
                      const Usage& usage);

// One streaming chunk for one choice. `finish_reason` set => the last chunk
// of that choice. `with_usage_null` adds "usage": null (include_usage set, as
// OpenAI does on every chunk but the usage chunk).
Json CompletionChunkJson(const ResponseMeta& meta, int32_t index, std::string_view text,
                         Json logprobs, std::optional<std::string_view> finish_reason,
                         bool with_usage_null);
// `delta` is {"role": "assistant", "content": ""}, {"content": "…"} or {}.
Json ChatChunkJson(const ResponseMeta& meta, int32_t index, Json delta, Json logprobs,
                   std::optional<std::string_view> finish_reason, bool with_usage_null);
// The final usage chunk: "choices": [] and "usage". `object` is
// "text_completion" or "chat.completion.chunk".
Json UsageChunkJson(const ResponseMeta& meta, std::string_view object, const Usage& usage);

}  // namespace restkv::server
