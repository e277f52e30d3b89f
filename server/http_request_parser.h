// The Beast request parser exactly as HttpServer's sessions configure it,
// one per request: the body limited to HttpServerOptions::max_body_bytes
// (413 past it), the header block to kHeaderLimitBytes (431 past it).
// Shared by http_session.cc and the request-framing fuzzer
// (http_request_fuzzer.cc), so the fuzzer parses what the server parses.
#pragma once

#include <cstdint>

#include "boost/beast/http/parser.hpp"
#include "boost/beast/http/string_body.hpp"

namespace restkv::server {

using HttpRequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

inline constexpr uint32_t kHeaderLimitBytes = 64 * 1024;

inline void ConfigureRequestParser(uint64_t max_body_bytes, HttpRequestParser& parser) {
  parser.body_limit(max_body_bytes);
  parser.header_limit(kHeaderLimitBytes);
}

}  // namespace restkv::server
