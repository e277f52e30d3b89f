// Server-sent events as OpenAI streams them: each event is one line
// "data: <payload>" followed by a blank line, and the stream ends with the
// sentinel event "data: [DONE]".
//
//   data: {"id":"cmpl-…","object":"text_completion",…}\n
//   \n
//   data: [DONE]\n
//   \n
//
// A payload must be a single line; compact JSON always is (newlines inside
// strings are escaped), and FormatSseEvent splits any other multi-line
// payload into several "data:" lines as the SSE specification requires.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "server/api_error.h"

namespace restkv::server {

inline constexpr std::string_view kSseContentType = "text/event-stream";
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// One event carrying `payload`.
std::string FormatSseEvent(std::string_view payload);
// One event carrying `value` as compact JSON (invalid UTF-8 replaced).
std::string FormatSseJson(const Json& value);

}  // namespace restkv::server
