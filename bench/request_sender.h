// The transport seam of the load loop: runner.h schedules requests and
// records what they saw; a RequestSender carries one request to the target
// and times it. Two implementations: HttpSender (http_client.h, OpenAI SSE
// over Beast) and GrpcSender (grpc_client.h, restkv.v1.Generation).
//
// Contract for Send: it runs on the runner's single io_context thread,
// returns once the request has ended one way or another (never hangs: the
// sender applies StreamTimeouts itself) and fills the StreamResult:
//   sent        when the request left (connection attempt / call start),
//   chunk_times one stamp per streamed event that carried output (text or
//               token ids) — TTFT is the first, ITLs are their gaps,
//   done        when the stream ended,
//   usage_*     the server's token counts (-1 when not reported),
//   streamed_tokens  output tokens counted from the stream itself when the
//               transport carries ids (gRPC); -1 otherwise,
//   ok / error_kind / error  (kinds listed in each sender's header).
// Latencies are NOT measured here against the intended send time; the
// runner does that (MakeRecord), so a sender only stamps events.
//
// Thread safety: Send may be called many times concurrently on the one
// io_context thread (one coroutine per request in flight).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "boost/asio/awaitable.hpp"

namespace restkv::bench {

using Clock = std::chrono::steady_clock;

struct StreamTimeouts {
  std::chrono::milliseconds connect{10'000};
  std::chrono::milliseconds stall{60'000};  // no event at all for this long
  std::chrono::milliseconds total{600'000};
};

// What one streamed request saw; times are steady_clock.
struct StreamResult {
  bool ok = false;
  int http_status = 0;                         // HTTP only; 0 for gRPC
  std::string error_kind;                      // "" when ok
  std::string error;                           // a human-readable detail
  Clock::time_point sent;                      // when the request began
  std::vector<Clock::time_point> chunk_times;  // events with output
  Clock::time_point done;
  int64_t usage_prompt_tokens = -1;  // from `usage`; -1 when absent
  int64_t usage_completion_tokens = -1;
  int64_t streamed_tokens = -1;  // token ids seen in the stream; -1 when not carried
  std::string finish_reason;
};

// One request of a run, ready to send.
struct WorkItem {
  double arrival_s = 0;
  std::string body;    // HTTP: the JSON request (empty for gRPC)
  std::string prompt;  // the prompt text (gRPC builds its request from it)
  int32_t input_tokens = 0;
  int32_t output_tokens = 0;  // max_tokens
};

class RequestSender {
 public:
  virtual ~RequestSender() = default;
  virtual boost::asio::awaitable<void> Send(const WorkItem& item, StreamResult* out) = 0;
};

}  // namespace restkv::bench
