// GrpcServer: the gRPC frontend of `restkv serve` — restkv.v1.Generation
// (grpc_service.h) plus the standard grpc.health.v1.Health service, on one
// insecure listening port beside the HTTP server.
//
// Health: SERVING for service "" and "restkv.v1.Generation" once started;
// StartDraining turns both NOT_SERVING and makes new Generate calls
// UNAVAILABLE. A watcher thread reads the engine's backend status every
// `health_poll` and turns both NOT_SERVING for good once the backend has
// failed (EngineStats::backend_status), as /health does over HTTP, so a
// Kubernetes gRPC probe takes the pod out of service. Shutdown(deadline) lets calls in flight
// finish until the deadline, then cancels them (each cancels its engine request), and returns when
// every call is done. Shut down before the engine stops.
//
// Thread safety: StartDraining and active_calls are thread-safe; Shutdown
// is called from one thread (the destructor calls it too).
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "engine/engine.h"
#include "grpcpp/grpcpp.h"
#include "server/grpc_service.h"

namespace restkv::server {

class GrpcServer {
 public:
  // Binds host:port (port 0 => any free port) and starts serving.
  // `engine` and the config's pointers must outlive the server.
  // Errors: Unavailable when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const std::string& host, int port, engine::Engine& engine, GrpcServiceConfig config,
      std::chrono::milliseconds health_poll = std::chrono::seconds(1));
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] int active_calls() const { return service_->active_calls(); }
  void StartDraining();
  // Idempotent; returns once every call has ended.
  void Shutdown(std::chrono::system_clock::time_point deadline);

 private:
  GrpcServer() = default;
  void WatchBackend(std::chrono::milliseconds poll);
  void StopWatcher();

  std::unique_ptr<GrpcGenerationService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
  engine::Engine* engine_ = nullptr;
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool watch_stop_ = false;  // guarded by watch_mu_
  std::thread watcher_;
};

}  // namespace restkv::server
