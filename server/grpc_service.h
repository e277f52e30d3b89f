// GrpcGenerationService: the restkv.v1.Generation gRPC service
// (proto/restkv/v1/generation.proto) on grpc++'s callback API.
//
//   Generate ── auth, plan (generation_plan.h) ── Engine::Submit ──> engine thread
//     engine thread: StreamSink::OnTokens/OnFinish ── queue under a mutex
//     whoever finds no write in flight starts the next StartWrite; each
//     OnWriteDone starts the one after; after the last message, Finish.
//
// The engine thread never waits: its sink only appends to the call's queue
// and, when no write is in flight, starts one (StartWrite does not block).
//
// Status mapping (absl code from planning/Submit → grpc code):
//   InvalidArgument/FailedPrecondition/OutOfRange → INVALID_ARGUMENT
//   (bad params; a prompt too long names both lengths), model name other
//   than the served one → NOT_FOUND, queue full → RESOURCE_EXHAUSTED,
//   draining or engine shut down → UNAVAILABLE, missing/wrong API key →
//   UNAUTHENTICATED, engine failure → INTERNAL.
// Client cancellation and an expired deadline reach OnCancel, which cancels
// the request in the engine (its pages are freed at the next step); the
// call ends once the engine's OnFinish has arrived. (--request-timeout is
// not applied here; gRPC clients set a deadline instead.)
//
// Recording (--record-requests): every Generate call that got as far as a
// plan (the prompt tokenized) is handed to the recorder when it ends, with
// endpoint "grpc:Generate" and the HTTP API's equivalent status; the
// prompt's block hashes are computed before submission, on gRPC's thread,
// and Record() only queues, so the engine thread never waits on it.
//
// Thread safety: the handlers run on gRPC's threads and the sinks on the
// engine thread; shared state is behind each call's mutex and atomics.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/engine.h"
#include "engine/eviction/policy_config.h"
#include "grpcpp/grpcpp.h"
#include "restkv/v1/generation.grpc.pb.h"
#include "server/generation_plan.h"
#include "server/metrics.h"
#include "server/request_log.h"
#include "server/request_recorder.h"

namespace restkv::server {

struct GrpcServiceConfig {
  std::vector<std::string> served_model_names;  // >= 1; the first is reported
  std::string api_key;                          // "" => no authentication
  engine::KvPolicyConfig default_kv_policy;
  ServerMetrics* metrics = nullptr;     // optional; must outlive the service
  RequestLogger* log = nullptr;         // optional; must outlive the service
  RequestRecorder* recorder = nullptr;  // --record-requests; optional; must outlive the service
  RequestLimits limits;                 // priority, tokens per request
};

// absl status → gRPC status with the same message (codes as above).
grpc::Status ToGrpcStatus(const absl::Status& status);

class GrpcGenerationService final : public restkv::v1::Generation::CallbackService {
 public:
  // `engine` must outlive the service.
  GrpcGenerationService(engine::Engine& engine, GrpcServiceConfig config);

  grpc::ServerWriteReactor<restkv::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const restkv::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const restkv::v1::TokenizeRequest* request,
                                     restkv::v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const restkv::v1::ListModelsRequest* request,
                                       restkv::v1::ListModelsResponse* response) override;

  // New Generate calls get UNAVAILABLE from now on.
  void StartDraining() { draining_ = true; }
  // Generate calls not yet finished.
  [[nodiscard]] int active_calls() const { return active_calls_.load(); }

 private:
  class GenerateReactor;

  // OK, or UNAUTHENTICATED when a key is configured and the metadata lacks it.
  absl::Status CheckAuth(const grpc::CallbackServerContext& context) const;
  // OK for "" or a served name; NOT_FOUND otherwise.
  absl::Status CheckModel(const std::string& model) const;

  engine::Engine& engine_;
  const GrpcServiceConfig config_;
  std::atomic<bool> draining_{false};
  std::atomic<int> active_calls_{0};
};

}  // namespace restkv::server
