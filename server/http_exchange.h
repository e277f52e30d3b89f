// HttpExchange: one HTTP request and the response being written to it; what
// a route handler sees of the connection.
//
// A handler answers either with one Respond(), or with BeginStream(), any
// number of WriteChunk() and one EndStream() (chunked transfer encoding on
// HTTP/1.1). Writes are queued; the exchange completes when the last byte of
// the response is on the wire, and the connection then reads its next
// request (keep-alive) or closes.
//
// Client disconnect: if the peer closes or resets the connection before the
// response is complete, the callback given to OnDisconnect runs once, and
// every later call is a no-op. Handlers use it to cancel engine work.
//
// Threading: every method must be called on executor() — the connection's
// strand. The handler itself is invoked there; code on other threads (the
// engine's RequestSink) posts to executor() and must keep a shared_ptr to
// the exchange alive until its posted work has run.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "boost/asio/any_io_executor.hpp"
#include "boost/beast/core/string.hpp"
#include "boost/beast/http/message.hpp"
#include "boost/beast/http/status.hpp"
#include "boost/beast/http/string_body.hpp"

namespace restkv::server {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

class HttpExchange {
 public:
  virtual ~HttpExchange() = default;

  [[nodiscard]] virtual const HttpRequest& request() const = 0;
  [[nodiscard]] virtual boost::asio::any_io_executor executor() = 0;

  // Sends a complete response. Content-Length, Server and Connection headers
  // are filled in. REQUIRES: no response begun yet.
  virtual void Respond(HttpResponse response) = 0;

  // Sends the status line and headers of a streamed response.
  // REQUIRES: no response begun yet.
  virtual void BeginStream(boost::beast::http::status status, std::string_view content_type) = 0;
  // Queues `data` as the next piece of the body. REQUIRES: BeginStream done.
  virtual void WriteChunk(std::string data) = 0;
  // Ends the body. REQUIRES: BeginStream done; at most once.
  virtual void EndStream() = 0;

  // Sets the callback run (on the strand, at most once) when the client goes
  // away before the response is complete.
  virtual void OnDisconnect(std::function<void()> callback) = 0;
  // True once the client has gone away.
  [[nodiscard]] virtual bool disconnected() const = 0;
};

}  // namespace restkv::server

namespace restkv::server {

// Beast (Boost 1.74) speaks boost::string_view; the rest of restkv std's.
inline std::string_view StdView(boost::beast::string_view s) { return {s.data(), s.size()}; }
inline boost::beast::string_view BeastView(std::string_view s) { return {s.data(), s.size()}; }

// A complete response with a JSON (or any) body and the given status.
inline HttpResponse MakeHttpResponse(unsigned status, std::string body,
                                     std::string_view content_type = "application/json") {
  HttpResponse res{static_cast<boost::beast::http::status>(status), 11};
  res.set(boost::beast::http::field::content_type, BeastView(content_type));
  res.body() = std::move(body);
  return res;
}

}  // namespace restkv::server
