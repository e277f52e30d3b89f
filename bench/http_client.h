// The benchmark's HTTP side (Boost.Beast over Asio, C++20 coroutines):
// one streamed OpenAI request timed chunk by chunk, and small blocking
// helpers for the set-up calls (/v1/models, /tokenize, /metrics).
//
// A streamed request opens its own connection (so an open-loop sender never
// waits for a free pooled one), sends the JSON body and reads the SSE
// response as it arrives. Each `data:` event is stamped when it is parsed;
// events carrying text (completions `choices[].text`, chat
// `choices[].delta.content`) are the chunks TTFT and ITL are measured on,
// `usage` gives the token counts, `[DONE]` ends the stream.
//
// Bounded: connecting, then every read, has a deadline — the smaller of
// the stall timeout (no bytes at all for that long) and what is left of the
// request timeout — so a server that stalls or drops the connection ends
// the request with an error kind, never a hang.
//
// Error kinds: "connect", "http_<status>", "stall", "timeout", "closed"
// (the connection ended mid-response), "incomplete" (the body ended without
// [DONE]), "stream_error" (an {"error": ...} event), "bad_response".
//
// Thread safety: StreamCompletion runs on one executor; the helpers are
// independent calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/request_sender.h"
#include "boost/asio/awaitable.hpp"
#include "boost/asio/ip/tcp.hpp"

namespace restkv::bench {

struct Endpoint {
  std::string host;
  std::string port;
  std::string base_path;  // "" or "/prefix", prepended to every target
};

// "http://host[:port][/prefix]" (https is not supported).
absl::StatusOr<Endpoint> ParseUrl(const std::string& url);

// POSTs `body` to endpoint.base_path + target and reads the SSE stream.
boost::asio::awaitable<void> StreamCompletion(
    const boost::asio::ip::tcp::resolver::results_type& to, std::string host_header,
    std::string target, std::string body, std::string api_key, StreamTimeouts timeouts,
    StreamResult* out);

struct HttpReply {
  int status = 0;
  std::string body;
};

// Blocking GET/POST for set-up; an error status for connection failures
// and timeouts (not for HTTP error statuses).
absl::StatusOr<HttpReply> HttpGet(const Endpoint& ep, const std::string& target,
                                  const std::string& api_key, std::chrono::milliseconds timeout);
absl::StatusOr<HttpReply> HttpPostJson(const Endpoint& ep, const std::string& target,
                                       const std::string& body, const std::string& api_key,
                                       std::chrono::milliseconds timeout);

absl::StatusOr<boost::asio::ip::tcp::resolver::results_type> Resolve(const Endpoint& ep);

// RequestSender over HTTP: POSTs item.body to base_path + route with
// StreamCompletion (one connection per request). Create resolves the host once.
class HttpSender final : public RequestSender {
 public:
  static absl::StatusOr<HttpSender> Create(const Endpoint& ep, std::string route,
                                           std::string api_key, StreamTimeouts timeouts);
  boost::asio::awaitable<void> Send(const WorkItem& item, StreamResult* out) override;

 private:
  HttpSender() = default;
  boost::asio::ip::tcp::resolver::results_type to_;
  std::string host_header_, target_, api_key_;
  StreamTimeouts timeouts_;
};

}  // namespace restkv::bench
