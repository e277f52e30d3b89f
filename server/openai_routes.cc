#include "server/openai_routes.h"

#include <algorithm>
#include <exception>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "boost/asio/post.hpp"
#include "common/status_macros.h"
#include "common/version.h"
#include "server/api_error.h"
#include "server/generation_plan.h"
#include "server/openai_protocol.h"
#include "server/openai_response.h"
#include "server/request_id.h"

namespace restkv::server {
namespace {

namespace http = boost::beast::http;
using json = Json;

std::string_view PathOf(std::string_view target) {
  const size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

struct Route {
  std::string_view path;
  http::verb method;
};

constexpr Route kRoutes[] = {
    {"/v1/completions", http::verb::post},
    {"/v1/chat/completions", http::verb::post},
    {"/v1/models", http::verb::get},
    {"/tokenize", http::verb::post},
    {"/detokenize", http::verb::post},
    {"/health", http::verb::get},
    {"/version", http::verb::get},
    {"/metrics", http::verb::get},
    {"/live", http::verb::get},
};

}  // namespace

OpenAiRoutes::OpenAiRoutes(engine::Engine& engine, ServerMetrics& metrics, RequestLogger& log,
                           RoutesConfig config)
    : engine_(engine),
      metrics_(metrics),
      log_(log),
      config_(std::move(config)),
      auth_(config_.api_key),
      created_(UnixSecondsNow()),
      system_fingerprint_(SystemFingerprint(
          {kRestkvVersion, engine.model().path(), absl::StrCat(engine.max_model_len()),
           absl::StrFormat("%s:%d", engine::KvPolicyName(config_.default_kv_policy.kind),
                           config_.default_kv_policy.budget)})),
      ignored_fields_(&log),
      pool_(std::make_unique<WorkPool>(std::max(1, config_.prepare_threads),
                                       static_cast<size_t>(std::max(1, config_.prepare_queue)))) {}

void OpenAiRoutes::Handle(std::shared_ptr<HttpExchange> exchange) {
  // The error boundary: exceptions only come from third-party code
  // (Json, Beast, std allocation); the client gets a 500 and the
  // server keeps going.
  try {
    Dispatch(*exchange, exchange);
  } catch (const std::exception& e) {
    RespondError(*exchange, absl::InternalError(absl::StrCat("internal error: ", e.what())));
  }
}

void OpenAiRoutes::Dispatch(HttpExchange& exchange, const std::shared_ptr<HttpExchange>& shared) {
  const HttpRequest& req = exchange.request();
  const std::string_view path = PathOf(StdView(req.target()));
  const Route* route = nullptr;
  bool path_known = false;
  constexpr std::string_view kModelsPrefix = "/v1/models/";
  if (path.size() > kModelsPrefix.size() && path.substr(0, kModelsPrefix.size()) == kModelsPrefix) {
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      const ApiError e = MakeApiError(405, absl::StrFormat("method %s is not allowed on %s",
                                                           std::string(req.method_string()), path));
      exchange.Respond(MakeHttpResponse(e.http_status, DumpJson(ApiErrorJson(e))));
      return;
    }
    if (absl::Status s = auth_.Check(StdView(req[http::field::authorization])); !s.ok()) {
      return RespondError(exchange, s);
    }
    return HandleModel(exchange, path.substr(kModelsPrefix.size()));
  }
  for (const Route& r : kRoutes) {
    if (r.path != path) continue;
    path_known = true;
    // HEAD is GET without the body (the session drops it).
    const bool head_of_get = req.method() == http::verb::head && r.method == http::verb::get;
    if (r.method == req.method() || head_of_get) route = &r;
  }
  if (route == nullptr) {
    const ApiError e =
        path_known ? MakeApiError(405, absl::StrFormat("method %s is not allowed on %s",
                                                       std::string(req.method_string()), path))
                   : MakeApiError(404, absl::StrFormat("no route for %s %s",
                                                       std::string(req.method_string()), path));
    exchange.Respond(MakeHttpResponse(e.http_status, DumpJson(ApiErrorJson(e))));
    return;
  }
  if (!ApiKeyAuth::IsPublicPath(path)) {
    if (absl::Status s = auth_.Check(StdView(req[http::field::authorization])); !s.ok()) {
      return RespondError(exchange, s);
    }
  }
  // A failed backend (a sticky device error) fails every later request, so
  // both probes say so: readiness takes the pod out of service and liveness
  // has it restarted, which is what clears a CUDA context.
  const absl::Status backend = engine_.GetStats().backend_status;
  if (!backend.ok() && (path == "/health" || path == "/live")) {
    const Json body = {{"status", "failed"}, {"reason", std::string(backend.message())}};
    exchange.Respond(MakeHttpResponse(503, DumpJson(body)));
    return;
  }
  if (path == "/health") {
    const bool up = !draining();
    exchange.Respond(
        MakeHttpResponse(up ? 200 : 503, up ? R"({"status":"ok"})" : R"({"status":"draining"})"));
    return;
  }
  // Liveness is not readiness: a draining server is alive (it is finishing
  // streams) and must not be restarted by a liveness probe that reads drain.
  if (path == "/live") {
    exchange.Respond(MakeHttpResponse(200, R"({"status":"alive"})"));
    return;
  }
  if (path == "/version") return RespondJson(exchange, {{"version", kRestkvVersion}});
  if (path == "/metrics") {
    exchange.Respond(MakeHttpResponse(200, metrics_.Render(engine_.GetStats()),
                                      "text/plain; version=0.0.4; charset=utf-8"));
    return;
  }
  if (draining()) {
    return RespondError(exchange, absl::UnavailableError("the server is shutting down"));
  }
  absl::Status status;
  if (path == "/v1/completions") {
    status = HandleCompletions(shared);
  } else if (path == "/v1/chat/completions") {
    status = HandleChat(shared);
  } else if (path == "/tokenize") {
    status = HandleTokenize(shared);
  } else if (path == "/detokenize") {
    status = HandleDetokenize(shared);
  } else {
    HandleModels(exchange);
  }
  if (!status.ok()) RespondError(exchange, status);
}

void OpenAiRoutes::RespondError(HttpExchange& exchange, const absl::Status& status) {
  const ApiError e = ApiErrorFromStatus(status);
  exchange.Respond(MakeHttpResponse(e.http_status, DumpJson(ApiErrorJson(e))));
  RequestLogEntry log;
  log.method = std::string(exchange.request().method_string());
  log.target = std::string(exchange.request().target());
  log.http_status = e.http_status;
  log.n = 0;
  log.note = e.param.empty() ? e.message : absl::StrFormat("%s: %s", e.param, e.message);
  log_.Log(log);
}

void OpenAiRoutes::RespondJson(HttpExchange& exchange, const json& body) {
  exchange.Respond(MakeHttpResponse(200, DumpJson(body)));
}

absl::StatusOr<std::string> OpenAiRoutes::ResolveModel(const std::string& requested) const {
  if (requested.empty()) return config_.served_model_names.front();
  const auto& names = config_.served_model_names;
  if (std::find(names.begin(), names.end(), requested) != names.end()) return requested;
  return WithParam(
      absl::NotFoundError(absl::StrFormat("The model `%s` does not exist.", requested)), "model");
}

PlanContext OpenAiRoutes::MakePlanContext(const std::string& served_model) const {
  PlanContext ctx{engine_.model(), engine_.max_model_len(), served_model, config_.default_kv_policy,
                  config_.limits};
  ctx.grammars = &engine_.grammar_compiler();
  ctx.system_fingerprint = system_fingerprint_;
  ctx.max_tokens_that_fit = [engine = &engine_](int32_t n, const engine::KvPolicyConfig& policy) {
    return engine->MaxTokensThatFit(n, policy);
  };
  return ctx;
}

std::string OpenAiRoutes::ResponseId(const HttpExchange& exchange, std::string_view prefix,
                                     std::string generated) {
  const std::string id = SanitizeRequestId(StdView(exchange.request()[kRequestIdHeader]));
  return id.empty() ? std::move(generated) : std::string(prefix) + id;
}

void OpenAiRoutes::WarnUnknownFields(std::string_view route, const Json& body, FieldSet set) {
  ignored_fields_.Note(route, UnknownFields(body, set));
}

CallContext OpenAiRoutes::MakeCallContext() {
  return {&engine_, &metrics_, &log_, config_.request_timeout, &active_calls_, config_.recorder};
}

void OpenAiRoutes::Offload(const std::shared_ptr<HttpExchange>& exchange, PrepareFn prepare) {
  WorkPool::Task task = [this, exchange, prepare = std::move(prepare)]() mutable {
    absl::StatusOr<OnStrand> next;
    try {
      next = std::move(prepare)();
    } catch (const std::exception& e) {
      next = absl::InternalError(absl::StrCat("internal error: ", e.what()));
    }
    boost::asio::post(exchange->executor(), [this, exchange, next = std::move(next)]() mutable {
      if (exchange->disconnected()) return;  // nobody to answer; nothing was submitted
      try {
        if (!next.ok()) return RespondError(*exchange, next.status());
        std::move (*next)();
      } catch (const std::exception& e) {
        RespondError(*exchange, absl::InternalError(absl::StrCat("internal error: ", e.what())));
      }
    });
  };
  if (!pool_->TrySubmit(task)) {
    RespondError(*exchange,
                 absl::UnavailableError(absl::StrFormat(
                     "the server is busy: %d requests are already waiting to be tokenized; "
                     "retry later",
                     config_.prepare_queue)));
  }
}

absl::Status OpenAiRoutes::HandleCompletions(const std::shared_ptr<HttpExchange>& exchange) {
  Offload(exchange, [this, exchange]() -> absl::StatusOr<OnStrand> {
    RESTKV_ASSIGN_OR_RETURN(auto body, ParseJsonBody(exchange->request().body()));
    RESTKV_ASSIGN_OR_RETURN(CompletionRequest request, ParseCompletionRequest(body));
    WarnUnknownFields("/v1/completions", body, FieldSet::kCompletion);
    RESTKV_ASSIGN_OR_RETURN(std::string model, ResolveModel(request.model));
    RESTKV_ASSIGN_OR_RETURN(GenerationPlan plan, PlanCompletion(request, MakePlanContext(model)));
    plan.meta.id = ResponseId(*exchange, "cmpl-", std::move(plan.meta.id));
    return OnStrand([this, exchange, plan = std::move(plan)]() mutable {
      GenerationCall::Start(exchange, MakeCallContext(), std::move(plan));
    });
  });
  return absl::OkStatus();
}

absl::Status OpenAiRoutes::HandleChat(const std::shared_ptr<HttpExchange>& exchange) {
  Offload(exchange, [this, exchange]() -> absl::StatusOr<OnStrand> {
    RESTKV_ASSIGN_OR_RETURN(auto body, ParseJsonBody(exchange->request().body()));
    RESTKV_ASSIGN_OR_RETURN(ChatRequest request, ParseChatRequest(body));
    WarnUnknownFields("/v1/chat/completions", body, FieldSet::kChat);
    RESTKV_ASSIGN_OR_RETURN(std::string model, ResolveModel(request.model));
    RESTKV_ASSIGN_OR_RETURN(GenerationPlan plan, PlanChat(request, MakePlanContext(model)));
    plan.meta.id = ResponseId(*exchange, "chatcmpl-", std::move(plan.meta.id));
    return OnStrand([this, exchange, plan = std::move(plan)]() mutable {
      GenerationCall::Start(exchange, MakeCallContext(), std::move(plan));
    });
  });
  return absl::OkStatus();
}

absl::Status OpenAiRoutes::HandleTokenize(const std::shared_ptr<HttpExchange>& exchange) {
  Offload(exchange, [this, exchange]() -> absl::StatusOr<OnStrand> {
    RESTKV_ASSIGN_OR_RETURN(auto body, ParseJsonBody(exchange->request().body()));
    RESTKV_ASSIGN_OR_RETURN(TokenizeRequest request, ParseTokenizeRequest(body));
    WarnUnknownFields("/tokenize", body, FieldSet::kTokenize);
    RESTKV_RETURN_IF_ERROR(ResolveModel(request.model).status());
    const engine::Model& model = engine_.model();
    std::vector<int32_t> tokens;
    if (request.is_chat) {
      RESTKV_ASSIGN_OR_RETURN(tokens,
                              TokenizeChat(model, request.messages, request.add_generation_prompt,
                                           request.add_special_tokens));
    } else {
      tokens = model.tokenizer().Encode(request.prompt, request.add_special_tokens,
                                        /*parse_special=*/true);
    }
    json out = {{"count", tokens.size()},
                {"max_model_len", engine_.max_model_len()},
                {"tokens", tokens},
                {"token_strs", nullptr}};
    if (request.return_token_strs) {
      json strs = json::array();
      for (int32_t id : tokens)
        strs.push_back(model.tokenizer().TokenToPiece(id, /*render_special=*/true));
      out["token_strs"] = std::move(strs);
    }
    std::string text = DumpJson(out);
    return OnStrand([exchange, text = std::move(text)]() mutable {
      exchange->Respond(MakeHttpResponse(200, std::move(text)));
    });
  });
  return absl::OkStatus();
}

absl::Status OpenAiRoutes::HandleDetokenize(const std::shared_ptr<HttpExchange>& exchange) {
  Offload(exchange, [this, exchange]() -> absl::StatusOr<OnStrand> {
    RESTKV_ASSIGN_OR_RETURN(auto body, ParseJsonBody(exchange->request().body()));
    RESTKV_ASSIGN_OR_RETURN(DetokenizeRequest request, ParseDetokenizeRequest(body));
    WarnUnknownFields("/detokenize", body, FieldSet::kDetokenize);
    RESTKV_RETURN_IF_ERROR(ResolveModel(request.model).status());
    const engine::Tokenizer& tok = engine_.model().tokenizer();
    for (size_t i = 0; i < request.tokens.size(); ++i) {
      if (!tok.IsValidId(request.tokens[i])) {
        return InvalidParam("tokens",
                            absl::StrFormat("tokens[%d] = %d is outside the vocabulary [0, %d)", i,
                                            request.tokens[i], tok.vocab_size()));
      }
    }
    std::string text = DumpJson(json{{"prompt", tok.Decode(request.tokens)}});
    return OnStrand([exchange, text = std::move(text)]() mutable {
      exchange->Respond(MakeHttpResponse(200, std::move(text)));
    });
  });
  return absl::OkStatus();
}

json OpenAiRoutes::ModelCard(const std::string& name) const {
  return {{"id", name},
          {"object", "model"},
          {"created", created_},
          {"owned_by", "restkv"},
          {"root", engine_.model().path()},
          {"parent", nullptr},
          {"max_model_len", engine_.max_model_len()}};
}

void OpenAiRoutes::HandleModels(HttpExchange& exchange) {
  json data = json::array();
  for (const std::string& name : config_.served_model_names) data.push_back(ModelCard(name));
  RespondJson(exchange, {{"object", "list"}, {"data", std::move(data)}});
}

void OpenAiRoutes::HandleModel(HttpExchange& exchange, std::string_view id) {
  const auto& names = config_.served_model_names;
  if (std::find(names.begin(), names.end(), id) == names.end()) {
    const ApiError e = ApiErrorFromStatus(WithParam(
        absl::NotFoundError(absl::StrFormat("The model `%s` does not exist.", std::string(id))),
        "model"));
    exchange.Respond(MakeHttpResponse(e.http_status, DumpJson(ApiErrorJson(e))));
    return;
  }
  RespondJson(exchange, ModelCard(std::string(id)));
}

}  // namespace restkv::server
