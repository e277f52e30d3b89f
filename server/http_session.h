// One HTTP/1.1 connection of HttpServer (http_server.h), and the state the
// server shares with its connections. Internal to the HTTP layer: only
// http_server.cc starts sessions.
//
// A session reads a request (headers first, answering "Expect:
// 100-continue"; body limited to options.max_body_bytes), hands it to the
// handler as an HttpExchange, writes the response from a queue of byte
// strings (a whole response, or a chunked stream), and then reads the next
// request or closes. While a response is pending it watches the socket for
// EOF/reset and reports a disconnect through the exchange. All of it runs on
// the connection's strand.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "boost/asio/ip/tcp.hpp"
#include "server/http_server.h"

namespace restkv::server {

struct HttpServerShared {
  HttpServerOptions options;
  HttpServer::Handler handler;
  std::atomic<bool> stopping{false};  // finish the current exchange, then close
  std::atomic<int> active{0};         // exchanges read and not yet fully written
  std::atomic<int> connections{0};    // sessions whose socket is open

  // Sessions waiting for the next request, oldest first: at the connection
  // cap the listener closes the oldest of them to make room (idle keep-alive
  // connections are the cheapest to lose; a client reconnects).
  std::mutex idle_mu;
  std::map<uint64_t, std::function<void()>> idle;  // value: close it if still idle
  uint64_t next_idle_key = 1;

  // Registers `close_if_idle`; returns its key (never 0).
  uint64_t AddIdle(std::function<void()> close_if_idle);
  void RemoveIdle(uint64_t key);
  // Asks the oldest idle session to close; false when there is none.
  bool ReclaimOldestIdle();
};

// The first coding of a Transfer-Encoding header value that the server does
// not decode, or nullopt when the value is absent or just "chunked" (case
// and white space ignored; empty list elements skipped, as RFC 9110 §5.6.1
// allows).
std::optional<std::string> UnsupportedTransferCoding(std::string_view transfer_encoding);

// Serves `socket` (whose executor must be a strand) until it closes; the
// session keeps itself alive.
void StartHttpSession(boost::asio::ip::tcp::socket socket,
                      std::shared_ptr<HttpServerShared> shared);

}  // namespace restkv::server
