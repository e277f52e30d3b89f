#include "server/http_session.h"

#include <deque>
#include <exception>
#include <optional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "boost/asio/strand.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core/bind_handler.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/core/string.hpp"
#include "boost/beast/core/tcp_stream.hpp"
#include "boost/beast/http/error.hpp"
#include "boost/beast/http/parser.hpp"
#include "boost/beast/http/read.hpp"
#include "boost/beast/http/write.hpp"
#include "server/http_exchange.h"
#include "server/http_request_parser.h"
#include "server/request_id.h"

namespace restkv::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

// How long a connection closed after its last response (an error, or no
// keep-alive) keeps reading what the client still sends, so that closing with
// unread data does not reset the connection before the client has read it.
constexpr auto kLingerTime = std::chrono::seconds(5);

class Session;

// The HttpExchange handed to handlers: forwards to its session while it is
// the session's current exchange (sequence number), and is inert after.
class SessionExchange final : public HttpExchange {
 public:
  SessionExchange(std::shared_ptr<Session> session, uint64_t seq, HttpRequest request)
      : session_(std::move(session)), seq_(seq), request_(std::move(request)) {}

  const HttpRequest& request() const override { return request_; }
  net::any_io_executor executor() override;
  void Respond(HttpResponse response) override;
  void BeginStream(http::status status, std::string_view content_type) override;
  void WriteChunk(std::string data) override;
  void EndStream() override;
  void OnDisconnect(std::function<void()> callback) override;
  bool disconnected() const override;

 private:
  std::shared_ptr<Session> session_;
  const uint64_t seq_;
  HttpRequest request_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServerShared> shared)
      : stream_(std::move(socket)), shared_(std::move(shared)) {
    ++shared_->connections;
  }

  void Run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::DoRead, shared_from_this()));
  }

  net::any_io_executor executor() { return stream_.get_executor(); }
  bool Current(uint64_t seq) const { return in_exchange_ && seq == seq_; }
  bool closed() const { return closed_; }

  void Respond(uint64_t seq, HttpResponse res) {
    if (!Current(seq) || begun_) return;
    begun_ = done_ = true;
    res.version(version_);
    res.keep_alive(keep_alive_);
    res.set(http::field::server, "restkv");
    res.prepare_payload();
    // A HEAD response carries the headers a GET would (its Content-Length
    // included) and no body: a body would be read as the next response.
    if (head_) res.body().clear();
    std::ostringstream os;
    os << res;
    Enqueue(os.str());
  }

  // `extra_headers`: whole header lines, each ending in CRLF.
  void BeginStream(uint64_t seq, http::status status, std::string_view content_type,
                   std::string_view extra_headers) {
    if (!Current(seq) || begun_) return;
    begun_ = true;
    chunked_ = version_ >= 11;
    if (!chunked_) keep_alive_ = false;  // HTTP/1.0: the body ends when the connection does
    std::string head = absl::StrFormat(
        "HTTP/%d.%d %d %s\r\nServer: restkv\r\nContent-Type: %s\r\n"
        "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n",
        version_ / 10, version_ % 10, static_cast<int>(status),
        std::string(http::obsolete_reason(status)), content_type);
    head += extra_headers;
    if (chunked_) head += "Transfer-Encoding: chunked\r\n";
    head += keep_alive_ ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
    Enqueue(std::move(head));
  }

  void WriteChunk(uint64_t seq, std::string data) {
    if (!Current(seq) || !begun_ || done_ || data.empty() || head_) return;
    if (chunked_) data = absl::StrFormat("%x\r\n%s\r\n", data.size(), data);
    Enqueue(std::move(data));
  }

  void EndStream(uint64_t seq) {
    if (!Current(seq) || !begun_ || done_) return;
    done_ = true;
    if (chunked_ && !head_) {
      Enqueue("0\r\n\r\n");
    } else if (!writing_ && out_.empty()) {
      CompleteExchange();
    }
  }

  void SetOnDisconnect(uint64_t seq, std::function<void()> callback) {
    if (Current(seq)) on_disconnect_ = std::move(callback);
  }

 private:
  void DoRead() {
    if (closed_) return;
    parser_.emplace();
    ConfigureRequestParser(shared_->options.max_body_bytes, *parser_);
    stream_.expires_after(shared_->options.idle_timeout);
    if (buffer_.size() == 0) {  // nothing of the next request yet: reclaimable
      std::weak_ptr<Session> weak = weak_from_this();
      idle_key_ = shared_->AddIdle([weak] {
        if (std::shared_ptr<Session> self = weak.lock()) {
          net::post(self->executor(), [self] { self->CloseIfIdle(); });
        }
      });
    }
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnReadHeader, shared_from_this()));
  }

  // Clients such as curl send "Expect: 100-continue" with larger bodies and
  // wait (a second, for curl) for the go-ahead before sending the body.
  void OnReadHeader(beast::error_code ec, size_t) {
    LeaveIdle();
    if (closed_) return;
    if (ec) return OnReadError(ec);
    // Beast de-chunks a body whose last coding is chunked and hands over the
    // rest (gzip, deflate, ...) still encoded; we decode none of them, so
    // anything but plain chunked is refused (RFC 9112 §6.1: 501).
    if (std::optional<std::string> coding =
            UnsupportedTransferCoding(StdView(parser_->get()[http::field::transfer_encoding]))) {
      return RespondAndClose(
          501,
          absl::StrFormat("the transfer coding '%s' is not supported (only chunked)", *coding));
    }
    if (!parser_->is_done() &&
        beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = shared_from_this()](beast::error_code write_ec, size_t) {
                         if (write_ec) return self->Close();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    stream_.expires_after(shared_->options.body_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      return RespondAndClose(
          413, absl::StrFormat("the request body is larger than the limit of %d bytes",
                               shared_->options.max_body_bytes));
    }
    if (ec == http::error::header_limit) {
      return RespondAndClose(431, "the request headers are too large");
    }
    const bool http_error =
        &ec.category() == &http::make_error_code(http::error::bad_method).category();
    if (http_error && ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return RespondAndClose(400, "malformed HTTP request: " + ec.message());
    }
    Close();  // EOF, reset, timeout
  }

  void OnRead(beast::error_code ec, size_t) {
    if (closed_) return;
    if (ec) return OnReadError(ec);
    stream_.expires_never();
    HttpRequest request = parser_->release();
    ++seq_;
    in_exchange_ = true;
    begun_ = done_ = chunked_ = false;
    head_ = request.method() == http::verb::head;
    version_ = request.version() == 10 ? 10 : 11;
    keep_alive_ = request.keep_alive() && !shared_->stopping.load();
    on_disconnect_ = nullptr;
    ++shared_->active;
    auto exchange = std::make_shared<SessionExchange>(shared_from_this(), seq_, std::move(request));
    StartWatch();
    try {
      shared_->handler(exchange);
    } catch (const std::exception& e) {
      if (!begun_) {
        Respond(seq_, ErrorResponse(500, std::string("internal error: ") + e.what()));
      } else {
        ClientGone();  // a stream cut short is all the client can be told
      }
    }
  }

  HttpResponse ErrorResponse(int status, std::string message) {
    if (shared_->options.error_response)
      return shared_->options.error_response(status, std::move(message));
    HttpResponse res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, "text/plain");
    res.body() = std::move(message) + "\n";
    return res;
  }

  // Answers an unparseable request and closes the connection.
  void RespondAndClose(int status, std::string message) {
    ++seq_;
    in_exchange_ = true;
    begun_ = done_ = chunked_ = head_ = false;
    keep_alive_ = false;
    version_ = 11;
    ++shared_->active;
    Respond(seq_, ErrorResponse(status, std::move(message)));
  }

  // Waits for the socket to become readable while a response is pending, to
  // notice a client that closes or resets the connection.
  void StartWatch() {
    if (watching_ || closed_) return;
    watching_ = true;
    stream_.socket().async_wait(
        tcp::socket::wait_read,
        beast::bind_front_handler(&Session::OnReadable, shared_from_this()));
  }

  void OnReadable(beast::error_code ec) {
    watching_ = false;
    if (closed_) return;
    if (lingering_) return Linger();
    if (!in_exchange_) return DoRead();  // the exchange completed and cancelled the wait
    if (ec == net::error::operation_aborted) return;
    if (ec) return ClientGone();
    // Readiness can be stale (epoll is edge-triggered and the request's own
    // bytes may have raised it), so peek: EOF or an error means the client
    // is gone; nothing yet means wait again.
    char byte;
    beast::error_code peek_ec;
    stream_.socket().non_blocking(true, peek_ec);
    const size_t n =
        stream_.socket().receive(net::buffer(&byte, 1), tcp::socket::message_peek, peek_ec);
    if (peek_ec == net::error::would_block || peek_ec == net::error::try_again) return StartWatch();
    if (peek_ec || n == 0) return ClientGone();
    // Bytes of a pipelined request: leave them for the next read. The
    // disconnect of this exchange can then only be seen by a failed write.
  }

  void Enqueue(std::string data) {
    if (closed_) return;
    out_.push_back(std::move(data));
    if (!writing_) WriteNext();
  }

  void WriteNext() {
    writing_ = true;
    stream_.expires_after(shared_->options.write_timeout);
    net::async_write(stream_, net::buffer(out_.front()),
                     beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t) {
    writing_ = false;
    if (closed_) return;
    if (ec) return ClientGone();
    out_.pop_front();
    if (!out_.empty()) return WriteNext();
    stream_.expires_never();
    if (done_) CompleteExchange();
  }

  // The whole response is on the wire.
  void CompleteExchange() {
    in_exchange_ = false;
    on_disconnect_ = nullptr;
    --shared_->active;
    if (!keep_alive_ || shared_->stopping.load()) return StartLinger();
    if (watching_) {
      beast::error_code ignored;
      stream_.socket().cancel(ignored);  // OnReadable continues with DoRead
      return;
    }
    DoRead();
  }

  // Half-closes and discards what the client still sends, then closes.
  void StartLinger() {
    lingering_ = true;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kLingerTime);
    if (watching_) {
      stream_.socket().cancel(ignored);  // OnReadable continues with Linger
      return;
    }
    Linger();
  }

  void Linger() {
    stream_.async_read_some(net::buffer(scratch_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->Close();
                              self->Linger();
                            });
  }

  // The peer went away or the connection failed (reset, write error or
  // timeout): drop everything queued and, if a response was pending, tell
  // the handler.
  void ClientGone() { Close(); }

  void LeaveIdle() {
    if (idle_key_ == 0) return;
    shared_->RemoveIdle(idle_key_);
    idle_key_ = 0;
  }

  // At the connection cap: a session still waiting for its next request
  // gives its socket up.
  void CloseIfIdle() {
    if (idle_key_ != 0 && !in_exchange_) Close();
  }

  void Close() {
    if (closed_) return;
    LeaveIdle();
    closed_ = true;
    --shared_->connections;
    out_.clear();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    if (in_exchange_) {
      in_exchange_ = false;
      --shared_->active;
      std::function<void()> callback = std::move(on_disconnect_);
      on_disconnect_ = nullptr;
      if (callback) callback();
    }
  }

  beast::tcp_stream stream_;
  std::shared_ptr<HttpServerShared> shared_;
  beast::flat_buffer buffer_;
  std::optional<HttpRequestParser> parser_;
  std::deque<std::string> out_;
  std::function<void()> on_disconnect_;
  char scratch_[16 * 1024];
  uint64_t seq_ = 0;
  uint64_t idle_key_ = 0;  // registered in shared_->idle while waiting for a request
  unsigned version_ = 11;
  bool in_exchange_ = false;
  bool begun_ = false;  // a response was started
  bool done_ = false;   // the response is complete (maybe not yet written)
  bool chunked_ = false;
  bool head_ = false;  // the exchange answers a HEAD request: headers only
  bool keep_alive_ = true;
  bool writing_ = false;
  bool watching_ = false;
  bool lingering_ = false;
  bool closed_ = false;

  friend class SessionExchange;
};

net::any_io_executor SessionExchange::executor() { return session_->executor(); }
void SessionExchange::Respond(HttpResponse response) {
  if (const std::string id = SanitizeRequestId(StdView(request_[kRequestIdHeader])); !id.empty()) {
    response.set(kRequestIdHeader, id);
  }
  session_->Respond(seq_, std::move(response));
}
void SessionExchange::BeginStream(http::status status, std::string_view content_type) {
  std::string extra;
  if (const std::string id = SanitizeRequestId(StdView(request_[kRequestIdHeader])); !id.empty()) {
    extra = absl::StrFormat("%s: %s\r\n", kRequestIdHeader, id);
  }
  session_->BeginStream(seq_, status, content_type, extra);
}
void SessionExchange::WriteChunk(std::string data) { session_->WriteChunk(seq_, std::move(data)); }
void SessionExchange::EndStream() { session_->EndStream(seq_); }
void SessionExchange::OnDisconnect(std::function<void()> callback) {
  session_->SetOnDisconnect(seq_, std::move(callback));
}
bool SessionExchange::disconnected() const { return session_->closed(); }

}  // namespace

std::optional<std::string> UnsupportedTransferCoding(std::string_view transfer_encoding) {
  const absl::string_view value(transfer_encoding.data(), transfer_encoding.size());
  for (absl::string_view coding : absl::StrSplit(value, ',')) {
    coding = absl::StripAsciiWhitespace(coding);
    if (coding.empty() || absl::EqualsIgnoreCase(coding, "chunked")) continue;
    return std::string(coding);
  }
  return std::nullopt;
}

uint64_t HttpServerShared::AddIdle(std::function<void()> close_if_idle) {
  std::lock_guard<std::mutex> lock(idle_mu);
  const uint64_t key = next_idle_key++;
  idle.emplace(key, std::move(close_if_idle));
  return key;
}

void HttpServerShared::RemoveIdle(uint64_t key) {
  std::lock_guard<std::mutex> lock(idle_mu);
  idle.erase(key);
}

bool HttpServerShared::ReclaimOldestIdle() {
  std::function<void()> close;
  {
    std::lock_guard<std::mutex> lock(idle_mu);
    if (idle.empty()) return false;
    close = std::move(idle.begin()->second);
    idle.erase(idle.begin());
  }
  close();
  return true;
}

void StartHttpSession(tcp::socket socket, std::shared_ptr<HttpServerShared> shared) {
  std::make_shared<Session>(std::move(socket), std::move(shared))->Run();
}

}  // namespace restkv::server
