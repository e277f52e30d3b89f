// The benchmark's gRPC side: restkv.v1.Generation
// (proto/restkv/v1/generation.proto) through grpc++'s callback client.
//
// GrpcTarget: one channel to host:port — every call is multiplexed on it,
// as gRPC clients do — and the call metadata (`authorization: Bearer KEY`,
// which restkv's service checks). Blocking ListModels / Tokenize for set-up.
//
// GrpcSender (a RequestSender, request_sender.h): one server-streaming
// Generate per WorkItem (the prompt as `text`, or as one user turn in `chat`
// for chat workloads; max_tokens, temperature, ignore_eos). Each received
// message is stamped on gRPC's callback thread as it arrives; messages with
// token ids or text are the chunks TTFT and ITL are measured on; the
// `finished` message gives usage and finish_reason; token ids are counted
// to cross-check usage (StreamResult::streamed_tokens). The end of a
// request (E2E) is the arrival of the `finished` message, or the call's end
// when there is none.
//
// Bounded: the call's deadline is start + the request timeout; a watchdog
// on the runner's io_context cancels a call that receives nothing for the
// stall timeout. (The connect timeout does not apply: the channel connects
// once, during set-up.)
//
// Error kinds: "timeout" (DEADLINE_EXCEEDED, or the watchdog's deadline),
// "stall" (cancelled by the watchdog), "incomplete" (the stream ended OK
// without a `finished` message), "grpc_<CODE>" for any other status
// (e.g. "grpc_UNAVAILABLE" when nothing listens, "grpc_RESOURCE_EXHAUSTED"
// when the server's queue is full, "grpc_UNAUTHENTICATED").
//
// Thread safety: GrpcTarget is thread-safe; a GrpcSender's Send runs on one
// io_context thread (the runner's).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/request_sender.h"
#include "bench/workload.h"
#include "grpcpp/grpcpp.h"
#include "restkv/v1/generation.grpc.pb.h"

namespace restkv::bench {

// "RESOURCE_EXHAUSTED" etc.; "CODE_<n>" for codes gRPC does not define.
std::string GrpcCodeName(grpc::StatusCode code);

// The error kind for a call that ended with `status` (see above).
// stalled/timed_out: the watchdog cancelled it for that reason.
std::string GrpcErrorKind(const grpc::Status& status, bool stalled, bool timed_out);

struct GrpcModel {
  std::string id;
  int32_t max_model_len = 0;
};

class GrpcTarget {
 public:
  // host:port (an optional "grpc://" prefix is accepted). Does not connect.
  static absl::StatusOr<std::shared_ptr<GrpcTarget>> Create(const std::string& address,
                                                            std::string api_key);

  // Adds the authorization metadata (when there is a key) to a call.
  void Prepare(grpc::ClientContext* context) const;

  absl::StatusOr<std::vector<GrpcModel>> ListModels(std::chrono::milliseconds timeout) const;
  // Token count of `text` without special tokens, and the target's context.
  struct TokenCount {
    int32_t count = 0;
    int32_t max_model_len = 0;
  };
  absl::StatusOr<TokenCount> Tokenize(const std::string& model, const std::string& text,
                                      std::chrono::milliseconds timeout) const;

  restkv::v1::Generation::Stub& stub() const { return *stub_; }
  const std::string& address() const { return address_; }

 private:
  GrpcTarget() = default;
  std::string address_;
  std::string api_key_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<restkv::v1::Generation::Stub> stub_;
};

// The Generate request for one work item (exposed for tests).
restkv::v1::GenerateRequest MakeGenerateRequest(const WorkloadOptions& options,
                                                const WorkItem& item);

class GrpcSender final : public RequestSender {
 public:
  // `request` gives model, chat, ignore_eos and temperature.
  GrpcSender(std::shared_ptr<GrpcTarget> target, WorkloadOptions request, StreamTimeouts timeouts)
      : target_(std::move(target)), request_(std::move(request)), timeouts_(timeouts) {}

  boost::asio::awaitable<void> Send(const WorkItem& item, StreamResult* out) override;

 private:
  std::shared_ptr<GrpcTarget> target_;
  WorkloadOptions request_;
  StreamTimeouts timeouts_;
};

}  // namespace restkv::bench
