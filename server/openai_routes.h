// OpenAiRoutes: the HTTP API of `restkv serve` — routing, authentication,
// draining, and one error boundary that turns every failure into an OpenAI
// error object.
//
//   POST /v1/completions        GenerationCall (completions)
//   POST /v1/chat/completions   GenerationCall (chat)
//   GET  /v1/models             the served model name(s)
//   GET  /v1/models/{id}        one of them; 404 (OpenAI error, param "model") for any other id
//   POST /tokenize              {"count", "max_model_len", "tokens", "token_strs"}   (vLLM)
//   POST /detokenize            {"prompt"}                                          (vLLM)
//   GET  /health                200 {"status": "ok"}; 503 {"status": "draining"} once draining
//                               (readiness: a load balancer stops routing here)
//   GET  /live                  200 {"status": "alive"} while the process serves HTTP, draining
//                               included (liveness: a drain must not look like a hang)
//   GET  /version               {"version"}
//   GET  /metrics               Prometheus text (metrics.h)
//
// Status codes: 400 bad JSON, field or prompt (api_error.h); 401 missing or
// wrong API key (all routes but /health, /live, /metrics, /version); 404 unknown
// route or model; 405 wrong method; 429 engine queue full; 503 draining or
// shutting down, or the prepare queue full; 500 anything unexpected.
//
// Off the I/O threads: the POST routes parse their JSON body, render the chat
// template and tokenize on a WorkPool (work_pool.h) of
// RoutesConfig::prepare_threads workers, then continue on the connection's
// strand (submit to the engine, or respond). The probes and /metrics are
// answered on the strand at once, so a huge prompt cannot delay them. When
// prepare_queue requests already wait for a worker, a new one gets 503.
//
// Request ids: a client's X-Request-Id (request_id.h) is echoed on the
// response and becomes the generation's response id ("chatcmpl-<id>"), and
// with it the id of the log line and the recorded trace line. Unknown body
// fields are logged once per route and name (known_fields.h).
//
// Draining (graceful shutdown): after StartDraining, /health answers 503 so
// load balancers stop routing here, and new API requests get 503, while
// requests already running finish. /live, /metrics and /version stay up.
//
// Thread safety: Handle may run concurrently on many connections' strands;
// StartDraining and the getters are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "engine/engine.h"
#include "engine/eviction/policy_config.h"
#include "server/auth.h"
#include "server/generation_call.h"
#include "server/generation_plan.h"
#include "server/http_exchange.h"
#include "server/known_fields.h"
#include "server/metrics.h"
#include "server/request_log.h"
#include "server/work_pool.h"

namespace restkv::server {

struct RoutesConfig {
  std::vector<std::string> served_model_names;   // >= 1; requests may name any of them
  std::string api_key;                           // "" => no authentication
  std::chrono::milliseconds request_timeout{0};  // 0 => no limit
  engine::KvPolicyConfig default_kv_policy;      // validated; requests may override kind and budget
  RequestRecorder* recorder = nullptr;           // --record-requests; outlives the routes
  RequestLimits limits;                          // priority, tokens per request
  int32_t prepare_threads = 2;                   // WorkPool workers for the POST routes
  int32_t prepare_queue = 64;                    // requests waiting for one before 503
};

class OpenAiRoutes {
 public:
  // All references must outlive the routes and every call they start.
  OpenAiRoutes(engine::Engine& engine, ServerMetrics& metrics, RequestLogger& log,
               RoutesConfig config);

  // The HttpServer handler. Runs on the exchange's strand.
  void Handle(std::shared_ptr<HttpExchange> exchange);

  void StartDraining() { draining_ = true; }
  // Drops requests still waiting to be prepared and joins the workers. Call
  // once the io_context has stopped running and before it is destroyed; Handle
  // must not be called after.
  void StopPreparing() { pool_.reset(); }
  [[nodiscard]] bool draining() const { return draining_.load(); }
  // Generation requests still running in the engine.
  [[nodiscard]] int active_calls() const { return active_calls_.load(); }

 private:
  void Dispatch(HttpExchange& exchange, const std::shared_ptr<HttpExchange>& shared);
  void RespondError(HttpExchange& exchange, const absl::Status& status);
  void RespondJson(HttpExchange& exchange, const Json& body);
  absl::Status HandleCompletions(const std::shared_ptr<HttpExchange>& exchange);
  absl::Status HandleChat(const std::shared_ptr<HttpExchange>& exchange);
  absl::Status HandleTokenize(const std::shared_ptr<HttpExchange>& exchange);
  absl::Status HandleDetokenize(const std::shared_ptr<HttpExchange>& exchange);
  void HandleModels(HttpExchange& exchange);
  [[nodiscard]] Json ModelCard(const std::string& name) const;
  // GET /v1/models/{id}.
  void HandleModel(HttpExchange& exchange, std::string_view id);
  // The response id of a generation: "<prefix><X-Request-Id>" when the
  // client sent one, else `generated`.
  static std::string ResponseId(const HttpExchange& exchange, std::string_view prefix,
                                std::string generated);
  // Logs the body's unknown fields (once per name).
  void WarnUnknownFields(std::string_view route, const Json& body, FieldSet set);
  // What a prepared request does next, on the connection's strand.
  using OnStrand = absl::AnyInvocable<void() &&>;
  using PrepareFn = absl::AnyInvocable<absl::StatusOr<OnStrand>() &&>;
  // Runs `prepare` on the pool, then its result (or the error response) on
  // the exchange's strand; 503 at once when the pool's queue is full.
  void Offload(const std::shared_ptr<HttpExchange>& exchange, PrepareFn prepare);
  PlanContext MakePlanContext(const std::string& served_model) const;
  CallContext MakeCallContext();
  // The served name a request's `model` refers to ("" => the first).
  // NotFound (param "model") for any other name.
  absl::StatusOr<std::string> ResolveModel(const std::string& requested) const;

  engine::Engine& engine_;
  ServerMetrics& metrics_;
  RequestLogger& log_;
  const RoutesConfig config_;
  const ApiKeyAuth auth_;
  const int64_t created_;  // Unix seconds, for /v1/models
  const std::string system_fingerprint_;
  IgnoredFieldWarnings ignored_fields_;
  std::atomic<bool> draining_{false};
  std::atomic<int> active_calls_{0};
  // Last, so that it is destroyed (its workers joined) before anything the
  // tasks use.
  std::unique_ptr<WorkPool> pool_;
};

}  // namespace restkv::server
