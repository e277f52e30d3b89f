// HttpServer over loopback: keep-alive, streaming, the body limit, malformed
// requests, handler exceptions, and client-disconnect notification.
#include "server/http_server.h"

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "boost/asio/connect.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core/flat_buffer.hpp"
#include "boost/beast/http/read.hpp"
#include "boost/beast/http/write.hpp"
#include "gtest/gtest.h"

namespace restkv::server {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(HttpServer::Handler handler, uint64_t max_body = 1024) {
    HttpServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.max_body_bytes = max_body;
    auto server = HttpServer::Listen(ioc_, options, std::move(handler));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    server_.reset();
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }

  tcp::socket Connect() {
    tcp::socket s(client_ioc_);
    s.connect({net::ip::make_address("127.0.0.1"), server_->port()});
    return s;
  }

  static http::response<http::string_body> Exchange(tcp::socket& s,
                                                    http::request<http::string_body> req,
                                                    boost::beast::flat_buffer& buffer) {
    req.prepare_payload();
    http::write(s, req);
    http::response<http::string_body> res;
    http::read(s, buffer, res);
    return res;
  }

  static http::request<http::string_body> Post(const std::string& target, std::string body) {
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, "localhost");
    req.body() = std::move(body);
    return req;
  }

  net::io_context ioc_;
  net::io_context client_ioc_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

// Echoes the target and body back.
void Echo(std::shared_ptr<HttpExchange> e) {
  e->Respond(MakeHttpResponse(
      200, std::string(StdView(e->request().target())) + ":" + e->request().body(), "text/plain"));
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  Start(Echo);
  tcp::socket s = Connect();
  boost::beast::flat_buffer buffer;
  for (int i = 0; i < 3; ++i) {
    auto res = Exchange(s, Post("/x" + std::to_string(i), "body"), buffer);
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res.body(), "/x" + std::to_string(i) + ":body");
    EXPECT_TRUE(res.keep_alive());
  }
  // The exchange completes on the server just after the client has read it.
  for (int i = 0; i < 200 && server_->active_exchanges() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(server_->active_exchanges(), 0);
}

TEST_F(HttpServerTest, StreamsChunks) {
  Start([](std::shared_ptr<HttpExchange> e) {
    e->BeginStream(http::status::ok, "text/event-stream");
    // Chunks written later from the strand, as an engine sink would.
    net::post(e->executor(), [e] {
      e->WriteChunk("data: 1\n\n");
      e->WriteChunk("");  // ignored: an empty chunk would end the body
      e->WriteChunk("data: 2\n\n");
      e->EndStream();
    });
  });
  tcp::socket s = Connect();
  boost::beast::flat_buffer buffer;
  auto res = Exchange(s, Post("/s", ""), buffer);
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[http::field::content_type], "text/event-stream");
  EXPECT_TRUE(res.chunked());
  EXPECT_EQ(res.body(), "data: 1\n\ndata: 2\n\n");
  // The connection is still usable.
  EXPECT_EQ(Exchange(s, Post("/s", ""), buffer).body(), "data: 1\n\ndata: 2\n\n");
}

TEST_F(HttpServerTest, BodyOverTheLimitIs413) {
  Start(Echo, /*max_body=*/100);
  tcp::socket s = Connect();
  boost::beast::flat_buffer buffer;
  EXPECT_EQ(Exchange(s, Post("/ok", std::string(100, 'x')), buffer).result_int(), 200);
  auto res = Exchange(s, Post("/big", std::string(5000, 'x')), buffer);
  EXPECT_EQ(res.result_int(), 413);
  EXPECT_FALSE(res.keep_alive());
}

TEST_F(HttpServerTest, AnswersExpect100Continue) {
  Start(Echo);
  tcp::socket s = Connect();
  net::write(s, net::buffer(std::string("POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                                        "Expect: 100-continue\r\n\r\n")));
  std::string interim(25, '\0');  // "HTTP/1.1 100 Continue\r\n\r\n"
  net::read(s, net::buffer(interim));
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  net::write(s, net::buffer(std::string("body")));
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(s, buffer, res);
  EXPECT_EQ(res.body(), "/c:body");
}

TEST_F(HttpServerTest, MalformedRequestIs400) {
  Start(Echo);
  tcp::socket s = Connect();
  net::write(s, net::buffer(std::string("GARBAGE\r\n\r\n")));
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(s, buffer, res);
  EXPECT_EQ(res.result_int(), 400);
}

TEST_F(HttpServerTest, HandlerExceptionIs500AndServerSurvives) {
  Start([](std::shared_ptr<HttpExchange> e) {
    if (StdView(e->request().target()) == "/throw") throw std::runtime_error("boom");
    Echo(e);
  });
  tcp::socket s = Connect();
  boost::beast::flat_buffer buffer;
  auto res = Exchange(s, Post("/throw", ""), buffer);
  EXPECT_EQ(res.result_int(), 500);
  EXPECT_NE(res.body().find("boom"), std::string::npos);
  EXPECT_EQ(Exchange(s, Post("/fine", "1"), buffer).body(), "/fine:1");
}

TEST_F(HttpServerTest, ClientDisconnectIsReported) {
  std::promise<void> disconnected;
  std::atomic<bool> fired{false};
  std::shared_ptr<HttpExchange> held;  // never answered
  Start([&](std::shared_ptr<HttpExchange> e) {
    held = e;
    e->OnDisconnect([&] {
      if (!fired.exchange(true)) disconnected.set_value();
    });
  });
  {
    tcp::socket s = Connect();
    auto req = Post("/wait", "");
    req.prepare_payload();
    http::write(s, req);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }  // closes the socket
  ASSERT_EQ(disconnected.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(server_->active_exchanges(), 0);
  // Writes after the disconnect are ignored.
  net::post(held->executor(), [h = held] {
    EXPECT_TRUE(h->disconnected());
    h->Respond(MakeHttpResponse(200, "late"));
  });
}

TEST_F(HttpServerTest, StopAcceptingRefusesNewConnections) {
  Start(Echo);
  const uint16_t port = server_->port();
  server_->StopAccepting();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  tcp::socket s(client_ioc_);
  boost::system::error_code ec;
  s.connect({net::ip::make_address("127.0.0.1"), port}, ec);
  EXPECT_TRUE(ec) << "connected after StopAccepting";
}

}  // namespace
}  // namespace restkv::server
