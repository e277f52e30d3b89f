#include "server/grpc_service.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "server/api_error.h"
#include "server/auth.h"
#include "server/generation_plan.h"
#include "server/grpc_request.h"
#include "server/planned_record.h"
#include "server/request_id.h"

namespace restkv::server {
namespace {

using Clock = std::chrono::steady_clock;
namespace pb = restkv::v1;

std::string_view MetadataValue(const grpc::CallbackServerContext& context, std::string_view key) {
  const auto& md = context.client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return {};
  return std::string_view(it->second.data(), it->second.size());
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  std::string message(status.message());
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return grpc::Status::OK;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return {grpc::StatusCode::INVALID_ARGUMENT, message};
    case absl::StatusCode::kNotFound:
      return {grpc::StatusCode::NOT_FOUND, message};
    case absl::StatusCode::kResourceExhausted:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, message};
    case absl::StatusCode::kUnavailable:
      return {grpc::StatusCode::UNAVAILABLE, message};
    case absl::StatusCode::kUnauthenticated:
      return {grpc::StatusCode::UNAUTHENTICATED, message};
    case absl::StatusCode::kDeadlineExceeded:
      return {grpc::StatusCode::DEADLINE_EXCEEDED, message};
    case absl::StatusCode::kCancelled:
      return {grpc::StatusCode::CANCELLED, message};
    default:
      return {grpc::StatusCode::INTERNAL, message};
  }
}

// One Generate call. Lifetime: gRPC owns the reactor until OnDone (which
// deletes it); the engine holds the sink, which points back here. The sink
// touches the reactor only before the engine's OnFinish, and Finish is
// called only after it (or when nothing was submitted), so the reactor
// outlives every sink call that uses it.
class GrpcGenerationService::GenerateReactor final
    : public grpc::ServerWriteReactor<pb::GenerateResponse> {
 public:
  GenerateReactor(GrpcGenerationService& service, grpc::CallbackServerContext& context)
      : service_(service), context_(context), started_(Clock::now()) {
    ++service_.active_calls_;
  }

  void Start(const pb::GenerateRequest& request) {
    absl::Status s = Submit(request);
    if (!s.ok()) {
      LogLine(ApiErrorFromStatus(s).http_status, 0, 0, "", std::string(s.message()));
      Finish(ToGrpcStatus(s));
    }
  }

  // Engine thread: queue the event; start writing if nothing is in flight.
  void EngineTokens(const engine::TokenDelta& delta) {
    pb::GenerateResponse msg;
    msg.set_id(id_);
    for (int32_t t : delta.token_ids) msg.add_token_ids(t);
    msg.set_text(delta.text);
    if (tools_.active()) text_ += delta.text;
    const engine::Tokenizer& tok = service_.engine_.model().tokenizer();
    for (const engine::LogprobResult& lp : delta.logprobs) {
      pb::TokenLogprob* out = msg.add_logprobs();
      out->set_token_id(lp.chosen.token);
      out->set_token(tok.TokenToPiece(lp.chosen.token, true));
      out->set_logprob(lp.chosen.logprob);
      for (const engine::TokenLogprob& t : lp.top) {
        pb::TopLogprob* top = out->add_top();
        top->set_token_id(t.token);
        top->set_token(tok.TokenToPiece(t.token, true));
        top->set_logprob(t.logprob);
      }
    }
    Enqueue(std::move(msg), std::nullopt);
  }

  void EngineFinish(const engine::RequestSummary& summary) {
    if (service_.config_.metrics != nullptr) service_.config_.metrics->ObserveRequest(summary);
    pb::GenerateResponse msg;
    msg.set_id(id_);
    msg.set_finished(true);
    msg.set_finish_reason(std::string(engine::FinishReasonName(summary.reason)));
    if (tools_.active() && summary.reason == engine::FinishReason::kStop) {
      ParsedAssistantOutput out = ParseToolCalls(text_, tools_, tool_format_, id_.substr(9) + "_");
      if (!out.calls.empty()) {
        msg.set_tool_calls_json(ToolCallsJson(out.calls).dump());
        msg.set_finish_reason("tool_calls");
      }
    }
    msg.set_stop_reason(summary.stop_string);
    if (summary.stop_token_id >= 0) msg.set_stop_token_id(summary.stop_token_id);
    pb::Usage* u = msg.mutable_usage();
    u->set_prompt_tokens(summary.prompt_tokens);
    u->set_completion_tokens(summary.completion_tokens);
    u->set_total_tokens(summary.prompt_tokens + summary.completion_tokens);
    u->set_kv_tokens_kept(summary.kv_tokens_kept);
    u->set_kv_tokens_evicted(summary.kv_tokens_evicted);
    u->set_cached_tokens(summary.cached_tokens);
    summary_ = summary;
    Enqueue(std::move(msg), summary);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      // The stream is broken (client gone); stop writing, let the engine end.
      {
        std::lock_guard<std::mutex> lock(mu_);
        broken_ = true;
      }
      CancelInEngine();
    }
    Pump();
  }

  void OnCancel() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
    }
    CancelInEngine();
  }

  void OnDone() override {
    --service_.active_calls_;
    delete this;
  }

 private:
  class Sink final : public engine::RequestSink {
   public:
    explicit Sink(GenerateReactor* r) : r_(r) {}
    void OnTokens(const engine::TokenDelta& delta) override { r_->EngineTokens(delta); }
    void OnFinish(const engine::RequestSummary& summary) override { r_->EngineFinish(summary); }

   private:
    GenerateReactor* r_;
  };

  absl::Status Submit(const pb::GenerateRequest& request) {
    const GrpcServiceConfig& cfg = service_.config_;
    RESTKV_RETURN_IF_ERROR(service_.CheckAuth(context_));
    if (service_.draining_) return absl::UnavailableError("the server is shutting down");
    RESTKV_RETURN_IF_ERROR(service_.CheckModel(request.model()));
    engine::Engine& eng = service_.engine_;
    PlanContext plan_ctx{eng.model(), eng.max_model_len(), cfg.served_model_names.front(),
                         cfg.default_kv_policy, cfg.limits};
    plan_ctx.grammars = &eng.grammar_compiler();
    plan_ctx.max_tokens_that_fit = [&eng](int32_t n, const engine::KvPolicyConfig& policy) {
      return eng.MaxTokensThatFit(n, policy);
    };
    RESTKV_ASSIGN_OR_RETURN(GenerationPlan plan, PlanGrpcGenerate(request, plan_ctx));
    RESTKV_CHECK(plan.prompts.size() == 1 && plan.choices.size() == 1);
    id_ = plan.meta.id;
    // The HTTP API's X-Request-Id, as gRPC metadata: the id of the messages,
    // the log line and the trace line.
    if (const std::string rid = SanitizeRequestId(MetadataValue(context_, "x-request-id"));
        !rid.empty()) {
      id_ = (request.input_case() == pb::GenerateRequest::kChat ? "chatcmpl-" : "cmpl-") + rid;
    }
    tools_ = plan.tools;
    tool_format_ = plan.tool_format;
    if (cfg.recorder != nullptr) {
      record_ = PlannedRecord(plan, "grpc:Generate");
      record_->stream = true;  // Generate always streams
    }
    engine::EngineRequest req;
    req.prompt_tokens = std::move(plan.prompts[0].tokens);
    req.params = plan.choices[0].params;
    req.priority = plan.priority;
    req.kv_policy = plan.kv_policy;
    req.grammar = plan.grammar;
    req.sink = std::make_shared<Sink>(this);
    {
      // Hold the writer token while submitting so engine events queue up
      // until the handle is known.
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = true;
    }
    RESTKV_ASSIGN_OR_RETURN(engine::RequestHandle handle, eng.Submit(std::move(req)));
    bool cancelled_early;
    {
      std::lock_guard<std::mutex> lock(mu_);
      handle_ = handle;
      cancelled_early = cancelled_;
    }
    if (cancelled_early) eng.Cancel(handle);  // OnCancel ran before the handle was known
    Pump();
    return absl::OkStatus();
  }

  void CancelInEngine() {
    engine::RequestHandle h;
    {
      std::lock_guard<std::mutex> lock(mu_);
      h = handle_;
    }
    if (h != 0) service_.engine_.Cancel(h);
  }

  void Enqueue(pb::GenerateResponse msg, std::optional<engine::RequestSummary> final_summary) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (final_summary.has_value()) engine_finished_ = true;
      if (!broken_ && !cancelled_) queue_.push_back(std::move(msg));
      if (writing_) return;  // the writer picks it up
      writing_ = true;
    }
    Pump();
  }

  // Run by the holder of the writer token (writing_ == true): writes the
  // next queued message, finishes the call, or gives the token back.
  void Pump() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!queue_.empty() && !broken_ && !cancelled_) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      StartWrite(&current_);
      return;
    }
    queue_.clear();
    if (!engine_finished_) {
      writing_ = false;
      return;
    }
    const bool cancelled = cancelled_ || broken_;
    lock.unlock();
    grpc::Status status = grpc::Status::OK;
    int http_status = 200;  // the HTTP API's equivalent, for the request log
    std::string note;
    if (summary_.reason == engine::FinishReason::kError) {
      status = ToGrpcStatus(summary_.error.ok() ? absl::InternalError("engine failure")
                                                : summary_.error);
      note = std::string(summary_.error.message());
      http_status = 500;
    } else if (cancelled) {
      status = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
      note = "client cancelled";
      http_status = 499;  // nginx's "client closed request"
    } else if (summary_.reason == engine::FinishReason::kCancelled) {
      status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
      note = "cancelled by shutdown";
      http_status = 503;
    }
    LogLine(http_status, summary_.prompt_tokens, summary_.completion_tokens,
            std::string(engine::FinishReasonName(summary_.reason)), note);
    Finish(status);  // `this` may be deleted from here on
  }

  // One request-log line, and the recording when there is one;
  // `http_status` is the HTTP API's equivalent of the outcome so both
  // frontends' lines read alike.
  void LogLine(int http_status, int64_t prompt, int64_t completion, std::string finish,
               std::string note) {
    const double total_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
    if (record_.has_value()) {
      RecordedRequest r = *std::move(record_);
      record_.reset();
      r.request_id = id_;
      r.arrival = started_;
      if (prompt > 0) r.input_length = prompt;
      r.output_length = completion;
      r.http_status = http_status;
      r.finish = finish;
      r.ttft_ms = summary_.ttft_ms;
      r.e2e_ms = total_ms;
      service_.config_.recorder->Record(std::move(r));
    }
    if (service_.config_.log == nullptr) return;
    RequestLogEntry e;
    e.id = id_;
    e.method = "gRPC";
    e.target = "/restkv.v1.Generation/Generate";
    e.http_status = http_status;
    e.prompt_tokens = prompt;
    e.completion_tokens = completion;
    e.ttft_ms = summary_.ttft_ms;
    e.total_ms = total_ms;
    e.finish = std::move(finish);
    e.note = std::move(note);
    service_.config_.log->Log(e);
  }

  GrpcGenerationService& service_;
  grpc::CallbackServerContext& context_;
  const Clock::time_point started_;
  std::string id_;
  // Chat with tools: the whole text (engine thread), parsed for calls at the end.
  ChatTools tools_;
  ToolCallFormat tool_format_ = ToolCallFormat::kHermes;
  std::string text_;
  engine::RequestSummary summary_;         // written before engine_finished_ is set
  std::optional<RecordedRequest> record_;  // set by Submit when recording; used once by LogLine

  std::mutex mu_;
  std::deque<pb::GenerateResponse> queue_;  // guarded by mu_
  engine::RequestHandle handle_ = 0;        // guarded by mu_
  bool writing_ = false;                    // the writer token; guarded by mu_
  bool engine_finished_ = false;            // guarded by mu_
  bool cancelled_ = false;                  // guarded by mu_
  bool broken_ = false;                     // guarded by mu_
  pb::GenerateResponse current_;            // the message being written (token holder)
};

GrpcGenerationService::GrpcGenerationService(engine::Engine& engine, GrpcServiceConfig config)
    : engine_(engine), config_(std::move(config)) {
  RESTKV_CHECK(!config_.served_model_names.empty());
}

absl::Status GrpcGenerationService::CheckAuth(const grpc::CallbackServerContext& context) const {
  ApiKeyAuth auth(config_.api_key);
  if (!auth.enabled()) return absl::OkStatus();
  std::string_view x_api_key = MetadataValue(context, "x-api-key");
  if (!x_api_key.empty()) return auth.Check("Bearer " + std::string(x_api_key));
  absl::Status s = auth.Check(MetadataValue(context, "authorization"));
  if (!s.ok()) {
    return absl::UnauthenticatedError(
        "missing or wrong API key: send metadata 'authorization: Bearer <key>' or 'x-api-key: "
        "<key>'");
  }
  return s;
}

absl::Status GrpcGenerationService::CheckModel(const std::string& model) const {
  if (model.empty()) return absl::OkStatus();
  for (const std::string& name : config_.served_model_names) {
    if (name == model) return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrFormat("The model `%s` does not exist.", model));
}

grpc::ServerWriteReactor<pb::GenerateResponse>* GrpcGenerationService::Generate(
    grpc::CallbackServerContext* context, const pb::GenerateRequest* request) {
  auto* reactor = new GenerateReactor(*this, *context);
  reactor->Start(*request);
  return reactor;
}

grpc::ServerUnaryReactor* GrpcGenerationService::Tokenize(grpc::CallbackServerContext* context,
                                                          const pb::TokenizeRequest* request,
                                                          pb::TokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status s = [&]() -> absl::Status {
    RESTKV_RETURN_IF_ERROR(CheckAuth(*context));
    RESTKV_RETURN_IF_ERROR(CheckModel(request->model()));
    const engine::Model& model = engine_.model();
    std::vector<int32_t> tokens;
    if (request->input_case() == pb::TokenizeRequest::kChat) {
      const bool add_special = request->has_add_special_tokens() && request->add_special_tokens();
      const bool add_gen =
          !request->has_add_generation_prompt() || request->add_generation_prompt();
      RESTKV_ASSIGN_OR_RETURN(
          tokens, TokenizeChat(model, ChatFromProto(request->chat()), add_gen, add_special));
    } else {
      const bool add_special = !request->has_add_special_tokens() || request->add_special_tokens();
      tokens = model.tokenizer().Encode(request->text(), add_special, /*parse_special=*/true);
    }
    for (int32_t t : tokens) response->add_token_ids(t);
    response->set_count(static_cast<int32_t>(tokens.size()));
    response->set_max_model_len(engine_.max_model_len());
    return absl::OkStatus();
  }();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

grpc::ServerUnaryReactor* GrpcGenerationService::ListModels(grpc::CallbackServerContext* context,
                                                            const pb::ListModelsRequest* request,
                                                            pb::ListModelsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status s = CheckAuth(*context);
  if (s.ok()) {
    for (const std::string& name : config_.served_model_names) {
      pb::ModelInfo* m = response->add_models();
      m->set_id(name);
      m->set_max_model_len(engine_.max_model_len());
    }
  }
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

}  // namespace restkv::server
