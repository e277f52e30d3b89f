#include "server/http_server.h"

#include <cerrno>

#include "absl/strings/str_format.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/beast/core/bind_handler.hpp"
#include "server/http_session.h"

namespace restkv::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

class HttpServer::Listener : public std::enable_shared_from_this<HttpServer::Listener> {
 public:
  Listener(net::io_context& ioc, std::shared_ptr<HttpServerShared> shared)
      : ioc_(ioc),
        acceptor_(net::make_strand(ioc)),
        timer_(acceptor_.get_executor()),
        shared_(std::move(shared)) {}

  absl::Status Open(const tcp::endpoint& endpoint) {
    beast::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrFormat("cannot listen on %s:%d: %s",
                                                    endpoint.address().to_string(), endpoint.port(),
                                                    ec.message()));
    }
    return absl::OkStatus();
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }

  void Accept() {
    if (!acceptor_.is_open()) return;
    if (shared_->connections.load() >= shared_->options.max_connections) {
      // Make room (the close is posted to that session's strand) and look
      // again shortly; a burst beyond the cap waits in the listen backlog.
      shared_->ReclaimOldestIdle();
      return RetryAfter(kAtCapRecheck);
    }
    acceptor_.async_accept(net::make_strand(ioc_),
                           beast::bind_front_handler(&Listener::OnAccept, shared_from_this()));
  }

  void Stop() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ignored;
      self->acceptor_.close(ignored);
      self->timer_.cancel();
    });
  }

 private:
  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (!acceptor_.is_open()) return;
    if (IsResourceShortage(ec)) {
      shared_->ReclaimOldestIdle();
      return RetryAfter(HttpServer::kAcceptBackoff);
    }
    if (!ec) {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);  // SSE events go out as they are made
      StartHttpSession(std::move(socket), shared_);
    }
    Accept();
  }

  // How often a listener at the connection cap looks for room again.
  static constexpr std::chrono::milliseconds kAtCapRecheck{10};

  static bool IsResourceShortage(const beast::error_code& ec) {
    if (ec.category() != boost::system::system_category()) return false;
    const int e = ec.value();
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
  }

  void RetryAfter(std::chrono::milliseconds delay) {
    timer_.expires_after(delay);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->Accept();
    });
  }

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer timer_;
  std::shared_ptr<HttpServerShared> shared_;
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Listen(net::io_context& ioc,
                                                               HttpServerOptions options,
                                                               Handler handler) {
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto results =
      resolver.resolve(options.host, std::to_string(options.port), tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cannot resolve host '%s': %s", options.host, ec.message()));
  }
  auto shared = std::make_shared<HttpServerShared>();
  shared->options = std::move(options);
  shared->handler = std::move(handler);
  auto listener = std::make_shared<Listener>(ioc, shared);
  if (absl::Status s = listener->Open(results.begin()->endpoint()); !s.ok()) return s;
  const uint16_t port = listener->port();
  listener->Accept();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(shared), std::move(listener), port));
}

HttpServer::~HttpServer() { StopAccepting(); }

void HttpServer::StopAccepting() {
  shared_->stopping = true;
  listener_->Stop();
}

int HttpServer::active_exchanges() const { return shared_->active.load(); }

int HttpServer::open_connections() const { return shared_->connections.load(); }

}  // namespace restkv::server
