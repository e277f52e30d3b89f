// Workload traces: the requests a benchmark sends, read from the formats
// operators have at hand, and the time transformations applied to them.
//
//   Mooncake (JSON lines): {"timestamp": ms, "input_length": n,
//       "output_length": n, "hash_ids": [id, ...]} — one hash per 512-token
//       block of the prompt, equal ids meaning equal blocks (restkv serve
//       --record-requests writes this, plus fields of its own, ignored here).
//   BurstGPT (CSV): columns found by header name: "Timestamp" (s),
//       "Request tokens", "Response tokens"; rows with 0 response tokens are
//       failed requests in the original log: skipped and counted.
//   ShareGPT (JSON): [{"conversations": [{"from": "human", "value": ...},
//       {"from": "gpt", "value": ...}, ...]}, ...]: the first human turn is
//       the prompt, the reply after it gives the output length (measured in
//       tokens later, by the prompt builder); entries without such a pair are
//       skipped and counted.
//
// Errors: InvalidArgument naming "FILE:LINE: what is wrong" (ShareGPT: the
// line of the JSON parser's position); NotFound for a missing file.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace restkv::bench {

// Tokens per hash_ids block in Mooncake traces.
inline constexpr int32_t kHashBlockTokens = 512;

struct TraceRequest {
  double arrival_s = -1;  // from the trace, seconds from its start; < 0 => none
  int32_t input_len = 0;  // prompt tokens; with `prompt` set: unknown until measured
  int32_t output_len = 0;
  std::vector<int64_t> hash_ids;  // Mooncake: one per 512-token block
  std::string prompt;             // ShareGPT: the user's text
  std::string reply;              // ShareGPT: the reply (its length is the output length)
  int64_t line = 0;               // where it came from (1-based), for messages
};

struct Trace {
  std::vector<TraceRequest> requests;  // in arrival order when times are known
  int64_t skipped = 0;                 // rows the format says to skip (see above)
  std::string skipped_why;
};

enum class TraceFormat { kMooncake, kBurstGpt, kShareGpt };

// "mooncake" | "burstgpt" | "sharegpt"; "" => from the extension
// (.jsonl => mooncake, .csv => burstgpt, .json => sharegpt).
absl::StatusOr<TraceFormat> ResolveTraceFormat(absl::string_view name, absl::string_view path);

absl::StatusOr<Trace> LoadTrace(const std::string& path, TraceFormat format);

// The parsers on text already read (`path` only names it in messages).
absl::StatusOr<Trace> ParseMooncake(absl::string_view text, const std::string& path);
absl::StatusOr<Trace> ParseBurstGpt(absl::string_view text, const std::string& path);
absl::StatusOr<Trace> ParseShareGpt(absl::string_view text, const std::string& path);

// "START:END" in seconds of trace time; either side may be empty (open).
struct TimeWindow {
  double start_s = 0;
  double end_s = -1;  // < 0 => open
};
absl::StatusOr<TimeWindow> ParseTimeWindow(absl::string_view spec);

// Keeps requests with start <= arrival < end, sorted by arrival (stable),
// rebased so that the window's start is time 0, then multiplies every
// arrival by `time_scale` (0.5 replays twice as fast). Requests without an
// arrival time are kept as they are. REQUIRES: time_scale > 0.
void ApplyWindowAndScale(const TimeWindow& window, double time_scale, Trace* trace);

}  // namespace restkv::bench
