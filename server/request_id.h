// The client's request id: the X-Request-Id header, as vLLM reads it. When
// present it is echoed in the response's X-Request-Id header (every
// response, errors included), it becomes the response id of a generation
// ("chatcmpl-<id>", "cmpl-<id>", as vLLM builds them) and so the id of the
// request's log line and recorded trace line.
//
// Sanitised first: a header value is any visible ASCII, and an id that goes
// into logs, JSON and headers should be tamer. Every byte outside
// [A-Za-z0-9._:-] becomes '_' and the id is cut to kMaxRequestIdLength
// bytes, so the same header always maps to the same id and correlation
// survives; a header that is empty (or only whitespace) counts as absent.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace restkv::server {

inline constexpr size_t kMaxRequestIdLength = 128;
inline constexpr char kRequestIdHeader[] = "X-Request-Id";

// "" when `header` is empty or whitespace only.
std::string SanitizeRequestId(std::string_view header);

}  // namespace restkv::server
