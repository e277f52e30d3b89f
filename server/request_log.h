// The server's log: one line per API request (the issue's "id, prompt and
// completion tokens, TTFT, total time, finish reason") plus free-form lines
// for start-up and shutdown, each stamped with UTC time, written to stderr.
//
//   2025-05-01T12:00:00.123Z chatcmpl-3f2a… POST /v1/chat/completions 200
//       n=1 prompt_tokens=31 completion_tokens=12 ttft_ms=41.2 total_ms=160.3 finish=stop
//
// (one line; wrapped here). Failed requests log their status and message.
//
// Every line goes through EscapeForLog: one call, one physical line.
//
// Thread safety: RequestLogger's methods are thread-safe (whole lines are
// written under a mutex); FormatRequestLog and EscapeForLog are pure.
#pragma once

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

namespace restkv::server {

struct RequestLogEntry {
  std::string id;      // response id, e.g. "cmpl-…"
  std::string method;  // "POST"
  std::string target;  // "/v1/completions"
  int http_status = 200;
  int32_t n = 1;  // choices
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double ttft_ms = 0;  // until the first token of the first choice
  double total_ms = 0;
  std::string finish;  // finish reasons, comma-separated per choice ("stop,length")
  std::string note;    // error message or "client disconnected"
};

// The line without timestamp or newline.
std::string FormatRequestLog(const RequestLogEntry& entry);

// `text` with every ASCII control character (C0 and DEL) written as an
// escape — \n, \r, \t, \\ for the backslash itself, \xNN for the rest —
// so a client-supplied value (a model name, a path, an error message quoting
// the request) can never start a forged log line or drive the terminal.
std::string EscapeForLog(std::string_view text);

class RequestLogger {
 public:
  // Writes to `out` (stderr by default); `out` must outlive the logger.
  explicit RequestLogger(std::FILE* out = stderr) : out_(out) {}

  void Log(const RequestLogEntry& entry);
  void Info(std::string_view line);

 private:
  std::FILE* out_;
  std::mutex mu_;
};

}  // namespace restkv::server
