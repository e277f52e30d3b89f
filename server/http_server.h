// HttpServer: HTTP/1.1 on Boost.Beast/Asio — an acceptor plus one session per
// connection, keep-alive, a request body limit, idle and write timeouts, and
// client-disconnect detection while a response is pending. It knows nothing
// about the OpenAI API: every parsed request goes to one Handler as an
// HttpExchange (http_exchange.h).
//
// Per connection:
//   read request ──> handler(exchange) ──> response written ──> keep-alive? read next : close
//                     │ while the response is pending, a read-readiness wait on the
//                     │ socket notices EOF/reset and fires the exchange's OnDisconnect.
// Errors the server answers itself (body from options.error_response, then
// the connection closes): 413 when Content-Length or the body exceeds
// max_body_bytes, 431 for oversized headers, 400 for malformed HTTP, 500 when
// the handler throws. A connection must deliver a request's headers within
// idle_timeout of the previous response (or of connecting) and its body within
// body_timeout of the headers; a client that stops reading a response is
// dropped after write_timeout.
//
// Connections: at most max_connections are open at once. At the cap the
// acceptor stops accepting and closes the longest-idle connection that is
// waiting for its next request (its client can reconnect), so a flood of idle
// connections cannot lock out new clients such as a health probe. When
// accept fails for lack of file descriptors (EMFILE/ENFILE) or memory, the
// acceptor reclaims an idle connection and waits kAcceptBackoff before trying
// again, instead of retrying at once in a loop that would take a whole core.
//
// Threading: the caller runs the io_context on any number of threads; each
// connection lives on its own strand, so a handler and everything it posts
// to exchange->executor() run one at a time per connection.
// Lifetime: sessions share ownership of the handler and options, so the
// HttpServer may be destroyed while connections are still open; the
// io_context must outlive everything (stop and destroy it last).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"
#include "server/http_exchange.h"

namespace restkv::server {

struct HttpServerShared;  // http_session.h

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;  // 0 => an ephemeral port; see HttpServer::port()
  uint64_t max_body_bytes = 32ull << 20;
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(75)};
  std::chrono::milliseconds body_timeout{std::chrono::seconds(60)};
  std::chrono::milliseconds write_timeout{std::chrono::seconds(60)};
  int max_connections = 1024;  // >= 1
  // Builds the responses the server sends on its own (413, 431, 400, 500);
  // the default is a text/plain body.
  std::function<HttpResponse(int http_status, std::string message)> error_response;
};

class HttpServer {
 public:
  static constexpr std::chrono::milliseconds kAcceptBackoff{100};

  using Handler = std::function<void(std::shared_ptr<HttpExchange>)>;

  // Binds host:port and starts accepting on `ioc`.
  // Errors: InvalidArgument if the host does not resolve; Unavailable if the
  // address cannot be bound (in use, no permission).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Listen(boost::asio::io_context& ioc,
                                                            HttpServerOptions options,
                                                            Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port (the real one when options.port was 0).
  [[nodiscard]] uint16_t port() const { return port_; }

  // Closes the listening socket (thread-safe). Open connections finish the
  // exchange in progress and then close instead of keeping alive.
  void StopAccepting();

  // Exchanges read and not yet completely written (thread-safe).
  [[nodiscard]] int active_exchanges() const;
  // Connections open now (thread-safe).
  [[nodiscard]] int open_connections() const;

  class Listener;  // the accept loop (http_server.cc)

 private:
  HttpServer(std::shared_ptr<HttpServerShared> shared, std::shared_ptr<Listener> listener,
             uint16_t port)
      : shared_(std::move(shared)), listener_(std::move(listener)), port_(port) {}

  std::shared_ptr<HttpServerShared> shared_;
  std::shared_ptr<Listener> listener_;
  uint16_t port_;
};

}  // namespace restkv::server
