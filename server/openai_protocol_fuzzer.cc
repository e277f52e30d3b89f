// libFuzzer target for the OpenAI request parsing: any body must parse or
// fail with InvalidArgument, never crash, hang, leak or trip a sanitizer.
// On failure the error object is built and serialised as the server would;
// on success the invariants promised in openai_protocol.h are checked.
//
// Built and run by tests/fuzz/run_openai_fuzzer.sh (clang, -fsanitize=fuzzer,
// address,undefined). Not part of the restkv_server library.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "server/api_error.h"
#include "server/openai_protocol.h"
#include "server/sse_stream.h"

namespace {

using restkv::server::ApiErrorFromStatus;
using restkv::server::ApiErrorJson;
using restkv::server::DumpJson;
using restkv::server::FormatSseJson;

// Volatile sink so the optimiser keeps the work.
volatile size_t g_sink = 0;

void Require(bool ok) {
  if (!ok) __builtin_trap();
}

// A failed parse must be a 400 with a message, the way the routes answer it.
void CheckError(const absl::Status& status) {
  Require(status.code() == absl::StatusCode::kInvalidArgument);
  const restkv::server::ApiError e = ApiErrorFromStatus(status);
  Require(e.http_status == 400 && !e.message.empty());
  g_sink += DumpJson(ApiErrorJson(e)).size() + FormatSseJson(ApiErrorJson(e)).size();
}

void CheckGeneration(const restkv::server::GenerationFields& g) {
  Require(g.n >= 1 && g.n <= restkv::server::kMaxChoices);
  Require(!g.max_tokens.has_value() || *g.max_tokens >= 1);
  Require(g.params.temperature >= 0 && g.params.temperature <= 2);
  Require(g.params.top_p > 0 && g.params.top_p <= 1);
  Require(!g.include_usage || g.stream);
  for (const std::string& s : g.params.stop) Require(!s.empty());
  for (int32_t id : g.params.stop_token_ids) Require(id >= 0);
  Require(g.params.min_tokens >= 0);
  for (const auto& [id, bias] : g.params.logit_bias) {
    Require(id >= 0 && bias >= -100.0f && bias <= 100.0f);  // clamped, never NaN
  }
  Require(!g.truncate_prompt_tokens.has_value() || *g.truncate_prompt_tokens == -1 ||
          *g.truncate_prompt_tokens >= 1);
  Require(!g.continuous_usage || g.stream);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto json = restkv::server::ParseJsonBody(body);
  if (!json.ok()) {
    CheckError(json.status());
    return 0;
  }
  Require(json->is_object());
  if (auto r = restkv::server::ParseCompletionRequest(*json); r.ok()) {
    Require(!r->prompts.empty());
    for (const auto& p : r->prompts) {
      for (int32_t id : p.tokens) Require(id >= 0);
    }
    Require(r->logprobs >= -1 && r->logprobs <= 20);
    CheckGeneration(r->gen);
  } else {
    CheckError(r.status());
  }
  if (auto r = restkv::server::ParseChatRequest(*json); r.ok()) {
    Require(!r->messages.empty());
    for (const auto& m : r->messages) {
      Require(m.role == "system" || m.role == "user" || m.role == "assistant");
    }
    Require(r->top_logprobs == 0 || r->logprobs);
    CheckGeneration(r->gen);
  } else {
    CheckError(r.status());
  }
  if (auto r = restkv::server::ParseTokenizeRequest(*json); r.ok()) {
    g_sink += r->prompt.size() + r->messages.size();
  } else {
    CheckError(r.status());
  }
  if (auto r = restkv::server::ParseDetokenizeRequest(*json); r.ok()) {
    for (int32_t id : r->tokens) Require(id >= 0);
  } else {
    CheckError(r.status());
  }
  return 0;
}
