#include "server/request_log.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace restkv::server {

std::string FormatRequestLog(const RequestLogEntry& e) {
  std::string line = absl::StrFormat(
      "%s %s %s %d n=%d prompt_tokens=%d completion_tokens=%d ttft_ms=%.1f total_ms=%.1f finish=%s",
      e.id.empty() ? "-" : e.id, e.method, e.target, e.http_status, e.n, e.prompt_tokens,
      e.completion_tokens, e.ttft_ms, e.total_ms, e.finish.empty() ? "-" : e.finish);
  if (!e.note.empty()) absl::StrAppend(&line, " (", e.note, ")");
  return line;
}

std::string EscapeForLog(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          absl::StrAppend(&out, absl::StrFormat("\\x%02x", c));
        } else {
          out += ch;
        }
    }
  }
  return out;
}

void RequestLogger::Log(const RequestLogEntry& entry) { Info(FormatRequestLog(entry)); }

void RequestLogger::Info(std::string_view line) {
  const std::string stamp =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  const std::string safe = EscapeForLog(line);
  std::lock_guard<std::mutex> lock(mu_);
  std::fprintf(out_, "%s %s\n", stamp.c_str(), safe.c_str());
  std::fflush(out_);
}

}  // namespace restkv::server
