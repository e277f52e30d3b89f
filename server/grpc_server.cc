#include "server/grpc_server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/health_check_service_interface.h"

namespace restkv::server {
namespace {

constexpr const char* kServiceName = "restkv.v1.Generation";

void SetHealth(grpc::Server& server, bool serving) {
  grpc::HealthCheckServiceInterface* health = server.GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);  // every service, "" included
  health->SetServingStatus(kServiceName, serving);
}

}  // namespace

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Start(
    const std::string& host, int port, engine::Engine& engine, GrpcServiceConfig config,
    std::chrono::milliseconds health_poll) {
  // Process-wide switch read by ServerBuilder::BuildAndStart.
  grpc::EnableDefaultHealthCheckService(true);
  std::unique_ptr<GrpcServer> s(new GrpcServer());
  s->service_ = std::make_unique<GrpcGenerationService>(engine, std::move(config));
  grpc::ServerBuilder builder;
  // IPv6 literals need brackets in a gRPC target.
  const std::string address = host.find(':') != std::string::npos
                                  ? absl::StrCat("[", host, "]:", port)
                                  : absl::StrCat(host, ":", port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &s->port_);
  builder.RegisterService(s->service_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("gRPC: cannot listen on ", address));
  }
  SetHealth(*s->server_, true);
  s->engine_ = &engine;
  s->watcher_ = std::thread([raw = s.get(), health_poll] { raw->WatchBackend(health_poll); });
  return s;
}

void GrpcServer::WatchBackend(std::chrono::milliseconds poll) {
  std::unique_lock<std::mutex> lock(watch_mu_);
  while (!watch_cv_.wait_for(lock, poll, [this] { return watch_stop_; })) {
    if (!engine_->GetStats().backend_status.ok()) {
      // A failed backend never recovers (Backend::status() is sticky).
      SetHealth(*server_, false);
      return;
    }
  }
}

void GrpcServer::StopWatcher() {
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    watch_stop_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

GrpcServer::~GrpcServer() { Shutdown(std::chrono::system_clock::now()); }

void GrpcServer::StartDraining() {
  service_->StartDraining();
  if (server_ != nullptr) SetHealth(*server_, false);
}

void GrpcServer::Shutdown(std::chrono::system_clock::time_point deadline) {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  StopWatcher();
  StartDraining();
  server_->Shutdown(deadline);
  server_->Wait();
}

}  // namespace restkv::server
