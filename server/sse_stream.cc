#include "server/sse_stream.h"

#include "server/api_error.h"

namespace restkv::server {

std::string FormatSseEvent(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  size_t start = 0;
  while (true) {
    size_t end = payload.find('\n', start);
    std::string_view line =
        payload.substr(start, end == std::string_view::npos ? end : end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out += "data: ";
    out += line;
    out += '\n';
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  out += '\n';
  return out;
}

std::string FormatSseJson(const Json& value) { return FormatSseEvent(DumpJson(value)); }

}  // namespace restkv::server
