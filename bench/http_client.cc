#include "bench/http_client.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/detached.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/redirect_error.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "nlohmann/json.hpp"

namespace restkv::bench {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using nlohmann::json;

constexpr uint64_t kMaxBody = 256ull << 20;

http::request<http::string_body> MakeRequest(http::verb verb, const std::string& target,
                                             const std::string& host, const std::string& body,
                                             const std::string& api_key) {
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, host);
  req.set(http::field::user_agent, "restkv-bench");
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  if (verb == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  return req;
}

// Parses the SSE events complete in `pending` (consuming them) into `out`.
// Returns false once the stream is over ([DONE] or an error event).
bool ConsumeEvents(std::string* pending, Clock::time_point now, StreamResult* out, bool* done) {
  while (true) {
    size_t end = pending->find("\n\n");
    size_t skip = 2;
    const size_t crlf = pending->find("\r\n\r\n");
    if (crlf != std::string::npos && (end == std::string::npos || crlf < end)) {
      end = crlf;
      skip = 4;
    }
    if (end == std::string::npos) return true;
    const std::string event = pending->substr(0, end);
    pending->erase(0, end + skip);
    std::string data;
    size_t pos = 0;
    while (pos <= event.size()) {
      size_t nl = event.find('\n', pos);
      if (nl == std::string::npos) nl = event.size();
      std::string_view line(event.data() + pos, nl - pos);
      if (line.ends_with('\r')) line.remove_suffix(1);
      if (line.starts_with("data:")) {
        line.remove_prefix(5);
        if (line.starts_with(' ')) line.remove_prefix(1);
        if (!data.empty()) data += '\n';
        data.append(line.data(), line.size());
      }
      pos = nl + 1;
    }
    if (data.empty()) continue;  // a comment or keep-alive
    if (data == "[DONE]") {
      *done = true;
      return false;
    }
    json obj = json::parse(data, nullptr, false);
    if (obj.is_discarded() || !obj.is_object()) {
      out->error_kind = "bad_response";
      out->error = "an SSE event is not a JSON object: " + data.substr(0, 200);
      return false;
    }
    if (auto e = obj.find("error"); e != obj.end() && !e->is_null()) {
      out->error_kind = "stream_error";
      out->error = e->dump().substr(0, 300);
      return false;
    }
    bool has_text = false;
    if (auto choices = obj.find("choices"); choices != obj.end() && choices->is_array()) {
      for (const json& c : *choices) {
        if (!c.is_object()) continue;
        const json* text = nullptr;
        if (auto t = c.find("text"); t != c.end()) text = &*t;
        if (auto d = c.find("delta"); d != c.end() && d->is_object()) {
          if (auto t = d->find("content"); t != d->end()) text = &*t;
        }
        if (text != nullptr && text->is_string() && !text->get_ref<const std::string&>().empty())
          has_text = true;
        if (auto f = c.find("finish_reason"); f != c.end() && f->is_string())
          out->finish_reason = f->get<std::string>();
      }
    }
    if (has_text) out->chunk_times.push_back(now);
    if (auto u = obj.find("usage"); u != obj.end() && u->is_object()) {
      if (auto p = u->find("prompt_tokens"); p != u->end() && p->is_number_integer())
        out->usage_prompt_tokens = p->get<int64_t>();
      if (auto c = u->find("completion_tokens"); c != u->end() && c->is_number_integer())
        out->usage_completion_tokens = c->get<int64_t>();
    }
  }
}

std::chrono::milliseconds Left(Clock::time_point deadline) {
  return std::max(std::chrono::milliseconds(1),
                  std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
}

// One plain request/response, for the blocking helpers.
net::awaitable<void> Exchange(tcp::resolver::results_type to, http::request<http::string_body> req,
                              std::chrono::milliseconds timeout, absl::StatusOr<HttpReply>* out) {
  beast::tcp_stream stream(co_await net::this_coro::executor);
  beast::error_code ec;
  stream.expires_after(timeout);
  co_await stream.async_connect(to, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    *out = absl::UnavailableError(absl::StrCat("cannot connect: ", ec.message()));
    co_return;
  }
  co_await http::async_write(stream, req, net::redirect_error(net::use_awaitable, ec));
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  if (!ec)
    co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    *out = absl::UnavailableError(absl::StrCat(std::string(req.target()), ": ", ec.message()));
    co_return;
  }
  *out = HttpReply{static_cast<int>(parser.get().result_int()), parser.get().body()};
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

absl::StatusOr<HttpReply> Blocking(const Endpoint& ep, http::verb verb, const std::string& target,
                                   const std::string& body, const std::string& api_key,
                                   std::chrono::milliseconds timeout) {
  auto to = Resolve(ep);
  if (!to.ok()) return to.status();
  net::io_context ioc;
  absl::StatusOr<HttpReply> out = absl::InternalError("not run");
  net::co_spawn(ioc,
                Exchange(*to, MakeRequest(verb, ep.base_path + target, ep.host, body, api_key),
                         timeout, &out),
                net::detached);
  ioc.run();
  return out;
}

}  // namespace

absl::StatusOr<Endpoint> ParseUrl(const std::string& url) {
  std::string_view rest = url;
  if (rest.starts_with("https://")) {
    return absl::InvalidArgumentError("https URLs are not supported; use http://");
  }
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--url must start with http://, got '", url, "'"));
  }
  Endpoint ep;
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    ep.base_path = std::string(rest.substr(slash));
    while (absl::EndsWith(ep.base_path, "/")) ep.base_path.pop_back();
    // A URL given as ".../v1" means the API root; the routes add /v1 themselves.
    if (absl::EndsWith(ep.base_path, "/v1")) ep.base_path.resize(ep.base_path.size() - 3);
  }
  const size_t colon = authority.rfind(':');
  if (colon == std::string_view::npos) {
    ep.host = std::string(authority);
    ep.port = "80";
  } else {
    ep.host = std::string(authority.substr(0, colon));
    ep.port = std::string(authority.substr(colon + 1));
  }
  if (ep.host.empty() || ep.port.empty() ||
      !std::all_of(ep.port.begin(), ep.port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return absl::InvalidArgumentError(absl::StrCat("--url: cannot read host:port in '", url, "'"));
  }
  return ep;
}

absl::StatusOr<tcp::resolver::results_type> Resolve(const Endpoint& ep) {
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto results = resolver.resolve(ep.host, ep.port, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", ep.host, ":", ep.port, ": ", ec.message()));
  }
  return results;
}

absl::StatusOr<HttpReply> HttpGet(const Endpoint& ep, const std::string& target,
                                  const std::string& api_key, std::chrono::milliseconds timeout) {
  return Blocking(ep, http::verb::get, target, "", api_key, timeout);
}

absl::StatusOr<HttpReply> HttpPostJson(const Endpoint& ep, const std::string& target,
                                       const std::string& body, const std::string& api_key,
                                       std::chrono::milliseconds timeout) {
  return Blocking(ep, http::verb::post, target, body, api_key, timeout);
}

net::awaitable<void> StreamCompletion(const tcp::resolver::results_type& to,
                                      std::string host_header, std::string target, std::string body,
                                      std::string api_key, StreamTimeouts timeouts,
                                      StreamResult* out) {
  out->sent = Clock::now();
  const Clock::time_point deadline = out->sent + timeouts.total;
  beast::tcp_stream stream(co_await net::this_coro::executor);
  beast::error_code ec;
  auto finish = [&](const char* kind, std::string detail) {
    out->ok = false;
    out->error_kind = kind;
    out->error = std::move(detail);
    out->done = Clock::now();
  };
  // Which deadline a timeout came from.
  auto timeout_kind = [&] {
    return Clock::now() >= deadline - std::chrono::milliseconds(2) ? "timeout" : "stall";
  };
  auto arm = [&](std::chrono::milliseconds limit) {
    stream.expires_after(std::min(limit, Left(deadline)));
  };

  arm(timeouts.connect);
  co_await stream.async_connect(to, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    finish(ec == beast::error::timeout ? timeout_kind() : "connect", ec.message());
    co_return;
  }
  auto req = MakeRequest(http::verb::post, target, host_header, body, api_key);
  req.set(http::field::accept, "text/event-stream");
  arm(timeouts.stall);
  co_await http::async_write(stream, req, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    finish(ec == beast::error::timeout ? timeout_kind() : "closed", "sending: " + ec.message());
    co_return;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  arm(timeouts.stall);
  co_await http::async_read_header(stream, buffer, parser,
                                   net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    finish(ec == beast::error::timeout ? timeout_kind() : "closed",
           "reading headers: " + ec.message());
    co_return;
  }
  out->http_status = static_cast<int>(parser.get().result_int());
  if (out->http_status != 200) {
    arm(timeouts.stall);
    co_await http::async_read(stream, buffer, parser, net::redirect_error(net::use_awaitable, ec));
    finish("", parser.get().body().substr(0, 300));
    out->error_kind = "http_" + std::to_string(out->http_status);
    co_return;
  }
  std::string pending;
  auto on_chunk = [&pending](std::uint64_t, beast::string_view data, beast::error_code&) {
    pending.append(data.data(), data.size());
    return data.size();
  };
  parser.on_chunk_body(on_chunk);
  bool done = false;
  bool more = true;
  while (more && !parser.is_done()) {
    arm(timeouts.stall);
    co_await http::async_read_some(stream, buffer, parser,
                                   net::redirect_error(net::use_awaitable, ec));
    if (ec == http::error::end_of_stream || ec == net::error::eof) {
      finish(done ? "incomplete" : "closed", "the server closed the connection mid-response");
      co_return;
    }
    if (ec) {
      finish(ec == beast::error::timeout ? timeout_kind() : "closed", ec.message());
      co_return;
    }
    if (!parser.chunked()) {  // a Content-Length body: no chunk callback
      pending += parser.get().body();
      parser.get().body().clear();
    }
    more = ConsumeEvents(&pending, Clock::now(), out, &done);
  }
  out->done = Clock::now();
  if (!out->error_kind.empty()) {
    out->ok = false;
  } else if (!done) {
    finish("incomplete", "the response ended without data: [DONE]");
  } else {
    out->ok = true;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

absl::StatusOr<HttpSender> HttpSender::Create(const Endpoint& ep, std::string route,
                                              std::string api_key, StreamTimeouts timeouts) {
  auto to = Resolve(ep);
  if (!to.ok()) return to.status();
  HttpSender s;
  s.to_ = *std::move(to);
  s.host_header_ = ep.host + ":" + ep.port;
  s.target_ = ep.base_path + route;
  s.api_key_ = std::move(api_key);
  s.timeouts_ = timeouts;
  return s;
}

net::awaitable<void> HttpSender::Send(const WorkItem& item, StreamResult* out) {
  co_await StreamCompletion(to_, host_header_, target_, item.body, api_key_, timeouts_, out);
}

}  // namespace restkv::bench
