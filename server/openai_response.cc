#include "server/openai_response.h"

#include <chrono>
#include <cmath>
#include <random>

#include "absl/strings/str_format.h"

namespace restkv::server {
namespace {

using json = Json;

constexpr float kMinLogprob = -9999.0f;

float Finite(float logprob) { return std::isfinite(logprob) ? logprob : kMinLogprob; }

// Token text for logprobs: raw bytes, special tokens spelled out.
std::string TokenText(const engine::Tokenizer& tok, int32_t id) {
  return tok.TokenToPiece(id, /*render_special=*/true);
}

json Bytes(const std::string& text) {
  json out = json::array();
  for (unsigned char c : text) out.push_back(static_cast<int>(c));
  return out;
}

json Header(const ResponseMeta& meta, std::string_view object) {
  return {{"id", meta.id},
          {"object", object},
          {"created", meta.created},
          {"model", meta.model},
          {"system_fingerprint",
           meta.system_fingerprint.empty() ? json(nullptr) : json(meta.system_fingerprint)}};
}

json FinishReason(std::optional<std::string_view> r) {
  return r.has_value() ? json(*r) : json(nullptr);
}

}  // namespace

std::string NewResponseId(std::string_view prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrFormat("%s%016x%016x", prefix, rng(), rng());
}

std::string SystemFingerprint(const std::vector<std::string>& parts) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64
  for (const std::string& part : parts) {
    for (const unsigned char c : part + '\0') {
      h ^= c;
      h *= 1099511628211ull;
    }
  }
  return absl::StrFormat("fp_%016x", h);
}

json StopReasonJson(const std::string& stop_string, int32_t stop_token_id) {
  if (!stop_string.empty()) return stop_string;
  if (stop_token_id >= 0) return stop_token_id;
  return nullptr;
}

void SetChunkStopReason(json stop_reason, json* chunk) {
  (*chunk)["choices"][0]["stop_reason"] = std::move(stop_reason);
}

int64_t UnixSecondsNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json UsageJson(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}},
          {"kv_tokens_kept", u.kv_tokens_kept},
          {"kv_tokens_evicted", u.kv_tokens_evicted}};
}

json CompletionLogprobsJson(const engine::Tokenizer& tok,
                            absl::Span<const engine::LogprobResult> logprobs,
                            int64_t* text_offset) {
  json out = {{"tokens", json::array()},
              {"token_logprobs", json::array()},
              {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  for (const engine::LogprobResult& r : logprobs) {
    const std::string text = TokenText(tok, r.chosen.token);
    out["tokens"].push_back(text);
    out["token_logprobs"].push_back(Finite(r.chosen.logprob));
    json top = json::object();
    for (const engine::TokenLogprob& t : r.top) top[TokenText(tok, t.token)] = Finite(t.logprob);
    out["top_logprobs"].push_back(std::move(top));
    out["text_offset"].push_back(*text_offset);
    *text_offset += static_cast<int64_t>(text.size());
  }
  return out;
}

json EchoLogprobsJson(const engine::Tokenizer& tok, absl::Span<const int32_t> tokens,
                      int64_t* text_offset) {
  json out = {{"tokens", json::array()},
              {"token_logprobs", json::array()},
              {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  for (int32_t id : tokens) {
    const std::string text = TokenText(tok, id);
    out["tokens"].push_back(text);
    out["token_logprobs"].push_back(nullptr);
    out["top_logprobs"].push_back(nullptr);
    out["text_offset"].push_back(*text_offset);
    *text_offset += static_cast<int64_t>(text.size());
  }
  return out;
}

void FillPromptLogprobs(const engine::Tokenizer& tok,
                        absl::Span<const engine::LogprobResult> prompt_logprobs, json* echo) {
  json& values = (*echo)["token_logprobs"];
  json& tops = (*echo)["top_logprobs"];
  for (size_t i = 0; i < prompt_logprobs.size() && i + 1 < values.size(); ++i) {
    const engine::LogprobResult& r = prompt_logprobs[i];
    values[i + 1] = Finite(r.chosen.logprob);
    json top = json::object();
    for (const engine::TokenLogprob& t : r.top) top[TokenText(tok, t.token)] = Finite(t.logprob);
    tops[i + 1] = std::move(top);
  }
}

void AppendCompletionLogprobs(json* all, const json& more) {
  if (all->is_null()) {
    *all = more;
    return;
  }
  for (const char* key : {"tokens", "token_logprobs", "top_logprobs", "text_offset"}) {
    for (const json& v : more[key]) (*all)[key].push_back(v);
  }
}

json ChatLogprobsContentJson(const engine::Tokenizer& tok,
                             absl::Span<const engine::LogprobResult> logprobs) {
  json content = json::array();
  for (const engine::LogprobResult& r : logprobs) {
    const std::string text = TokenText(tok, r.chosen.token);
    json top = json::array();
    for (const engine::TokenLogprob& t : r.top) {
      const std::string alt = TokenText(tok, t.token);
      top.push_back({{"token", alt}, {"logprob", Finite(t.logprob)}, {"bytes", Bytes(alt)}});
    }
    content.push_back({{"token", text},
                       {"logprob", Finite(r.chosen.logprob)},
                       {"bytes", Bytes(text)},
                       {"top_logprobs", std::move(top)}});
  }
  return content;
}

json CompletionResponseJson(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices,
                            const Usage& usage) {
  json out = Header(meta, "text_completion");
  json list = json::array();
  for (const ChoiceResult& c : choices) {
    list.push_back({{"index", c.index},
                    {"text", c.text},
                    {"logprobs", c.logprobs},
                    {"finish_reason", c.finish_reason},
                    {"stop_reason", c.stop_reason}});
  }
  out["choices"] = std::move(list);
  out["usage"] = UsageJson(usage);
  return out;
}

json ChatResponseJson(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices,
                      const Usage& usage) {
  json out = Header(meta, "chat.completion");
  json list = json::array();
  for (const ChoiceResult& c : choices) {
    json message = {{"role", "assistant"}, {"content", c.text}};
    if (!c.tool_calls.empty()) {
      if (c.text.empty()) message["content"] = nullptr;
      if (c.legacy_function_call) {
        message["function_call"] = {{"name", c.tool_calls[0].name},
                                    {"arguments", c.tool_calls[0].arguments}};
      } else {
        message["tool_calls"] = ToolCallsJson(c.tool_calls);
      }
    }
    list.push_back({{"index", c.index},
                    {"message", std::move(message)},
                    {"logprobs", c.logprobs},
                    {"finish_reason", c.finish_reason},
                    {"stop_reason", c.stop_reason}});
  }
  out["choices"] = std::move(list);
  out["usage"] = UsageJson(usage);
  return out;
}

json CompletionChunkJson(const ResponseMeta& meta, int32_t index, std::string_view text,
                         json logprobs, std::optional<std::string_view> finish_reason,
                         bool with_usage_null) {
  json out = Header(meta, "text_completion");
  out["choices"] = json::array({{{"index", index},
                                 {"text", text},
                                 {"logprobs", std::move(logprobs)},
                                 {"finish_reason", FinishReason(finish_reason)}}});
  if (with_usage_null) out["usage"] = nullptr;
  return out;
}

json ChatChunkJson(const ResponseMeta& meta, int32_t index, json delta, json logprobs,
                   std::optional<std::string_view> finish_reason, bool with_usage_null) {
  json out = Header(meta, "chat.completion.chunk");
  out["choices"] = json::array({{{"index", index},
                                 {"delta", std::move(delta)},
                                 {"logprobs", std::move(logprobs)},
                                 {"finish_reason", FinishReason(finish_reason)}}});
  if (with_usage_null) out["usage"] = nullptr;
  return out;
}

json UsageChunkJson(const ResponseMeta& meta, std::string_view object, const Usage& usage) {
  json out = Header(meta, object);
  out["choices"] = json::array();
  out["usage"] = UsageJson(usage);
  return out;
}

}  // namespace restkv::server
