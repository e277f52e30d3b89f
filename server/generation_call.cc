#include "server/generation_call.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "boost/asio/post.hpp"
#include "server/api_error.h"
#include "server/openai_response.h"
#include "server/planned_record.h"
#include "server/sse_stream.h"

namespace restkv::server {
namespace {

namespace net = boost::asio;
using json = Json;

// Forwards one engine request's events to its call's strand.
class CallSink final : public engine::RequestSink {
 public:
  CallSink(std::shared_ptr<GenerationCall> call, net::any_io_executor executor, size_t choice)
      : call_(std::move(call)), executor_(std::move(executor)), choice_(choice) {}

  void OnPromptLogprobs(const std::vector<engine::LogprobResult>& logprobs) override {
    net::post(executor_, [call = call_, choice = choice_, logprobs] {
      call->OnPromptLogprobs(choice, logprobs);
    });
  }
  void OnTokens(const engine::TokenDelta& delta) override {
    net::post(executor_,
              [call = call_, choice = choice_, delta] { call->OnTokens(choice, delta); });
  }
  void OnFinish(const engine::RequestSummary& summary) override {
    net::post(executor_,
              [call = call_, choice = choice_, summary] { call->OnFinish(choice, summary); });
  }

 private:
  std::shared_ptr<GenerationCall> call_;
  net::any_io_executor executor_;
  size_t choice_;
};

const char* OpenAiFinishReason(engine::FinishReason r) {
  return r == engine::FinishReason::kLength ? "length" : "stop";
}

double MsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

void GenerationCall::Start(std::shared_ptr<HttpExchange> exchange, const CallContext& context,
                           GenerationPlan plan) {
  auto call = std::make_shared<GenerationCall>(std::move(exchange), context, std::move(plan));
  call->Submit();
}

GenerationCall::GenerationCall(std::shared_ptr<HttpExchange> exchange, const CallContext& context,
                               GenerationPlan plan)
    : exchange_(std::move(exchange)),
      ctx_(context),
      plan_(std::move(plan)),
      choices_(plan_.choices.size()),
      timer_(exchange_->executor()),
      started_(std::chrono::steady_clock::now()) {
  ++*ctx_.active_calls;
  if (plan_.stream && plan_.kind == ApiKind::kChat && plan_.tools.active()) {
    for (size_t i = 0; i < choices_.size(); ++i) {
      choices_[i].tool_stream.emplace(plan_.tools, plan_.tool_format,
                                      ToolCallIdPrefix(plan_.choices[i].index));
    }
  }
}

const engine::Tokenizer& GenerationCall::tokenizer() const {
  return ctx_.engine->model().tokenizer();
}

bool GenerationCall::WantsPromptLogprobs() const {
  return plan_.kind == ApiKind::kCompletion && plan_.echo && plan_.logprobs;
}

void GenerationCall::Submit() {
  if (WantsPromptLogprobs()) {
    // Echoed prompt tokens come first in the logprobs, and offsets continue after them.
    for (size_t i = 0; i < choices_.size(); ++i) {
      const PlannedPrompt& prompt = plan_.prompts[plan_.choices[i].prompt_index];
      choices_[i].logprobs = EchoLogprobsJson(tokenizer(), prompt.tokens, &choices_[i].text_offset);
    }
  }
  for (size_t i = 0; i < plan_.choices.size(); ++i) {
    const PlannedChoice& planned = plan_.choices[i];
    engine::EngineRequest request;
    request.prompt_tokens = plan_.prompts[planned.prompt_index].tokens;
    request.params = planned.params;
    request.priority = plan_.priority;
    request.kv_policy = plan_.kv_policy;
    request.grammar = plan_.grammar;
    if (WantsPromptLogprobs()) request.prompt_logprobs = std::max(0, planned.params.logprobs);
    request.sink = std::make_shared<CallSink>(shared_from_this(), exchange_->executor(), i);
    absl::StatusOr<engine::RequestHandle> handle = ctx_.engine->Submit(std::move(request));
    if (!handle.ok()) {
      ending_ = Ending::kFailed;
      // Engine codes already say who is at fault: InvalidArgument (this
      // request, including one that can never fit the pool) is a 400,
      // ResourceExhausted (a full queue) a 429.
      error_ = handle.status();
      CancelUnfinished();
      MaybeComplete();
      return;
    }
    choices_[i].handle = *handle;
    choices_[i].submitted = true;
    ++num_unfinished_;
  }
  std::weak_ptr<GenerationCall> weak = weak_from_this();
  exchange_->OnDisconnect([weak] {
    if (auto call = weak.lock()) call->OnDisconnect();
  });
  if (ctx_.timeout.count() > 0) {
    timer_.expires_after(ctx_.timeout);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->OnTimeout();
    });
  }
  if (plan_.stream) BeginStream();
}

void GenerationCall::BeginStream() {
  exchange_->BeginStream(boost::beast::http::status::ok, kSseContentType);
  for (size_t i = 0; i < choices_.size(); ++i) {
    const int32_t index = plan_.choices[i].index;
    if (plan_.kind == ApiKind::kChat) {
      WriteChoiceChunk(i, ChatChunkJson(plan_.meta, index, {{"role", "assistant"}, {"content", ""}},
                                        nullptr, std::nullopt, plan_.include_usage));
    } else if (plan_.echo && !WantsPromptLogprobs()) {
      SendEchoChunk(i);
    }
  }
}

void GenerationCall::SendEchoChunk(size_t choice) {
  const PlannedPrompt& prompt = plan_.prompts[plan_.choices[choice].prompt_index];
  WriteChoiceChunk(
      choice,
      CompletionChunkJson(plan_.meta, plan_.choices[choice].index, prompt.echo_text,
                          std::move(choices_[choice].logprobs), std::nullopt, plan_.include_usage));
  choices_[choice].logprobs = nullptr;
}

void GenerationCall::OnPromptLogprobs(size_t choice,
                                      const std::vector<engine::LogprobResult>& logprobs) {
  ChoiceState& c = choices_[choice];
  if (c.finished || ending_ != Ending::kNormal || !WantsPromptLogprobs()) return;
  FillPromptLogprobs(tokenizer(), logprobs, &c.logprobs);
  if (plan_.stream) SendEchoChunk(choice);
}

void GenerationCall::OnTokens(size_t choice, const engine::TokenDelta& delta) {
  ChoiceState& c = choices_[choice];
  if (c.finished || ending_ != Ending::kNormal) return;
  c.tokens_out += static_cast<int64_t>(delta.token_ids.size());
  json logprobs = nullptr;
  if (plan_.logprobs && !delta.logprobs.empty()) {
    if (plan_.kind == ApiKind::kChat) {
      logprobs = ChatLogprobsContentJson(tokenizer(), delta.logprobs);
    } else {
      logprobs = CompletionLogprobsJson(tokenizer(), delta.logprobs, &c.text_offset);
    }
  }
  if (c.tool_stream) {
    SendToolCallDeltas(choice, c.tool_stream->Append(delta.text), std::move(logprobs));
    return;
  }
  if (plan_.stream) {
    if (!delta.text.empty() || !logprobs.is_null())
      SendChunk(choice, delta.text, std::move(logprobs));
    return;
  }
  c.text += delta.text;
  if (logprobs.is_null()) return;
  if (plan_.kind == ApiKind::kChat) {
    if (c.logprobs.is_null()) c.logprobs = json::array();
    for (json& entry : logprobs) c.logprobs.push_back(std::move(entry));
  } else {
    AppendCompletionLogprobs(&c.logprobs, logprobs);
  }
}

void GenerationCall::SendChunk(size_t choice, const std::string& text, json logprobs) {
  const int32_t index = plan_.choices[choice].index;
  if (plan_.kind == ApiKind::kChat) {
    json lp = logprobs.is_null() ? json(nullptr) : json{{"content", std::move(logprobs)}};
    WriteChoiceChunk(choice, ChatChunkJson(plan_.meta, index, {{"content", text}}, std::move(lp),
                                           std::nullopt, plan_.include_usage));
  } else {
    WriteChoiceChunk(choice, CompletionChunkJson(plan_.meta, index, text, std::move(logprobs),
                                                 std::nullopt, plan_.include_usage));
  }
}

void GenerationCall::WriteChoiceChunk(size_t choice, json chunk) {
  if (plan_.continuous_usage) {
    Usage u;
    u.prompt_tokens =
        static_cast<int64_t>(plan_.prompts[plan_.choices[choice].prompt_index].tokens.size());
    u.completion_tokens = choices_[choice].tokens_out;
    chunk["usage"] = UsageJson(u);
  }
  exchange_->WriteChunk(FormatSseJson(chunk));
}

void GenerationCall::SendFinishChunk(size_t choice, const char* finish_reason) {
  const int32_t index = plan_.choices[choice].index;
  const engine::RequestSummary& summary = choices_[choice].summary;
  json chunk =
      plan_.kind == ApiKind::kChat
          ? ChatChunkJson(plan_.meta, index, json::object(), nullptr, finish_reason,
                          plan_.include_usage)
          : CompletionChunkJson(plan_.meta, index, "", nullptr, finish_reason, plan_.include_usage);
  SetChunkStopReason(StopReasonJson(summary.stop_string, summary.stop_token_id), &chunk);
  choices_[choice].tokens_out = summary.completion_tokens;  // the end token included
  WriteChoiceChunk(choice, std::move(chunk));
}

std::string GenerationCall::ToolCallIdPrefix(int32_t index) const {
  return absl::StrCat(plan_.meta.id.substr(9), "_", index, "_");
}

void GenerationCall::SendToolCallDeltas(size_t choice, std::vector<ToolCallDelta> deltas,
                                        json logprobs) {
  const int32_t index = plan_.choices[choice].index;
  for (ToolCallDelta& d : deltas) {
    if (d.call < 0) {
      // The logprobs of held-back tokens ride on the next content chunk.
      SendChunk(choice, d.content, std::exchange(logprobs, nullptr));
      continue;
    }
    // OpenAI's shape: a call's first delta carries its index, id, type and
    // name with empty arguments; the arguments follow in pieces.
    json call = d.id.empty() ? json{{"index", d.call}, {"function", {{"arguments", d.arguments}}}}
                             : json{{"index", d.call},
                                    {"id", d.id},
                                    {"type", "function"},
                                    {"function", {{"name", d.name}, {"arguments", ""}}}};
    WriteChoiceChunk(choice, ChatChunkJson(plan_.meta, index, {{"tool_calls", json::array({call})}},
                                           nullptr, std::nullopt, plan_.include_usage));
  }
}

const char* GenerationCall::FlushToolCalls(size_t choice, const char* finish_reason) {
  ChoiceState& c = choices_[choice];
  if (!c.tool_stream) return finish_reason;
  SendToolCallDeltas(choice, c.tool_stream->Finish(), nullptr);
  const bool called = c.tool_stream->calls_sent() > 0;
  return called && finish_reason == std::string_view("stop") ? "tool_calls" : finish_reason;
}

void GenerationCall::SendErrorEvent(const absl::Status& status) {
  exchange_->WriteChunk(FormatSseJson(ApiErrorJson(ApiErrorFromStatus(status))));
}

void GenerationCall::OnFinish(size_t choice, const engine::RequestSummary& summary) {
  ChoiceState& c = choices_[choice];
  if (c.finished) return;
  c.finished = true;
  c.summary = summary;
  --num_unfinished_;
  ctx_.metrics->ObserveRequest(summary);
  const bool ok = summary.reason == engine::FinishReason::kStop ||
                  summary.reason == engine::FinishReason::kLength;
  if (ending_ == Ending::kNormal) {
    if (ok) {
      if (plan_.stream) {
        SendFinishChunk(choice, FlushToolCalls(choice, OpenAiFinishReason(summary.reason)));
      }
    } else {
      // Not cancelled by us, so by the engine's shutdown, or failed.
      const absl::Status status =
          summary.reason == engine::FinishReason::kError
              ? (summary.error.ok() ? absl::InternalError("generation failed") : summary.error)
              : absl::UnavailableError("the server shut down before the request finished");
      if (plan_.stream) {
        SendErrorEvent(status);
        if (error_.ok()) error_ = status;
      } else {
        ending_ = Ending::kFailed;
        error_ = status;
        CancelUnfinished();
      }
    }
  }
  MaybeComplete();
}

void GenerationCall::CancelUnfinished() {
  for (ChoiceState& c : choices_) {
    if (c.submitted && !c.finished) ctx_.engine->Cancel(c.handle);
  }
}

void GenerationCall::OnDisconnect() {
  if (completed_ || ending_ == Ending::kDisconnected) return;
  ending_ = Ending::kDisconnected;
  CancelUnfinished();
}

void GenerationCall::OnTimeout() {
  if (completed_ || ending_ != Ending::kNormal) return;
  ending_ = Ending::kTimedOut;
  error_ = absl::DeadlineExceededError(
      absl::StrFormat("the request did not finish within the server's request timeout of %.0f s",
                      ctx_.timeout.count() / 1000.0));
  if (plan_.stream) SendErrorEvent(error_);
  CancelUnfinished();
}

void GenerationCall::MaybeComplete() {
  if (completed_ || num_unfinished_ > 0) return;
  completed_ = true;
  timer_.cancel();
  Usage usage;
  for (const PlannedPrompt& p : plan_.prompts)
    usage.prompt_tokens += static_cast<int64_t>(p.tokens.size());
  std::vector<std::string> finishes;
  double ttft_ms = -1;
  for (const ChoiceState& c : choices_) {
    if (!c.submitted) continue;
    usage.completion_tokens += c.summary.completion_tokens;
    usage.kv_tokens_kept += c.summary.kv_tokens_kept;
    usage.kv_tokens_evicted += c.summary.kv_tokens_evicted;
    usage.cached_tokens += c.summary.cached_tokens;
    finishes.emplace_back(engine::FinishReasonName(c.summary.reason));
    if (c.summary.completion_tokens > 0 && (ttft_ms < 0 || c.summary.ttft_ms < ttft_ms)) {
      ttft_ms = c.summary.ttft_ms;
    }
  }
  RequestLogEntry log;
  log.id = plan_.meta.id;
  log.method = std::string(exchange_->request().method_string());
  log.target = std::string(exchange_->request().target());
  log.n = static_cast<int32_t>(choices_.size());
  log.prompt_tokens = usage.prompt_tokens;
  log.completion_tokens = usage.completion_tokens;
  log.ttft_ms = std::max(0.0, ttft_ms);
  log.total_ms = MsSince(started_);
  log.finish = absl::StrJoin(finishes, ",");

  if (ending_ == Ending::kDisconnected) {
    log.http_status = 499;  // nginx's "client closed request"
    log.note = "client disconnected";
  } else if (plan_.stream && ending_ != Ending::kFailed) {
    // Streamed: the status line went out as 200 before any error.
    if (plan_.include_usage) {
      exchange_->WriteChunk(FormatSseJson(UsageChunkJson(
          plan_.meta, plan_.kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion",
          usage)));
    }
    exchange_->WriteChunk(std::string(kSseDone));
    exchange_->EndStream();
    if (!error_.ok()) log.note = std::string(error_.message());
  } else if (ending_ != Ending::kNormal) {
    const ApiError e = ApiErrorFromStatus(error_);
    exchange_->Respond(MakeHttpResponse(e.http_status, DumpJson(ApiErrorJson(e))));
    log.http_status = e.http_status;
    log.note = e.message;
  } else {
    std::vector<ChoiceResult> results;
    for (size_t i = 0; i < choices_.size(); ++i) {
      ChoiceState& c = choices_[i];
      ChoiceResult r;
      r.index = plan_.choices[i].index;
      r.finish_reason = OpenAiFinishReason(c.summary.reason);
      r.stop_reason = StopReasonJson(c.summary.stop_string, c.summary.stop_token_id);
      if (plan_.kind == ApiKind::kChat) {
        r.text = std::move(c.text);
        if (plan_.tools.active()) {
          ParsedAssistantOutput out =
              ParseToolCalls(r.text, plan_.tools, plan_.tool_format, ToolCallIdPrefix(r.index));
          r.text = std::move(out.content);
          r.tool_calls = std::move(out.calls);
          r.legacy_function_call = plan_.tools.legacy;
          if (!r.tool_calls.empty() && r.finish_reason == "stop") {
            r.finish_reason = plan_.tools.legacy ? "function_call" : "tool_calls";
          }
        }
        if (plan_.logprobs)
          r.logprobs = {{"content", c.logprobs.is_null() ? json::array() : std::move(c.logprobs)}};
      } else {
        const PlannedPrompt& prompt = plan_.prompts[plan_.choices[i].prompt_index];
        r.text = plan_.echo ? prompt.echo_text + c.text : std::move(c.text);
        if (plan_.logprobs) {
          int64_t unused = 0;
          r.logprobs = c.logprobs.is_null() ? CompletionLogprobsJson(tokenizer(), {}, &unused)
                                            : std::move(c.logprobs);
        }
      }
      results.push_back(std::move(r));
    }
    const json body = plan_.kind == ApiKind::kChat
                          ? ChatResponseJson(plan_.meta, results, usage)
                          : CompletionResponseJson(plan_.meta, results, usage);
    exchange_->Respond(MakeHttpResponse(200, DumpJson(body)));
  }
  ctx_.log->Log(log);
  if (ctx_.recorder != nullptr) Record(log);
  --*ctx_.active_calls;
}

void GenerationCall::Record(const RequestLogEntry& log) {
  RecordedRequest r = PlannedRecord(plan_, log.target);
  r.request_id = log.id;
  r.arrival = started_;
  r.input_length = log.prompt_tokens;
  for (const ChoiceState& c : choices_) {
    if (c.submitted)
      r.output_length = std::max<int64_t>(r.output_length, c.summary.completion_tokens);
  }
  r.n = log.n;
  r.http_status = log.http_status;
  r.finish = log.finish;
  r.ttft_ms = log.ttft_ms;
  r.e2e_ms = log.total_ms;
  ctx_.recorder->Record(std::move(r));
}

}  // namespace restkv::server
