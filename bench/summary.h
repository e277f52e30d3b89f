// Per-request records and the run summary, with vLLM's `bench serve` key
// names so results can be compared across tools:
//   completed, failed, total_input_tokens, total_output_tokens, duration,
//   request_throughput, output_throughput, total_token_throughput,
//   request_goodput (with --goodput), and {mean,median,std,p90,p99}_{ttft,
//   tpot,itl,e2el}_ms.
// Definitions (vLLM's): TTFT = first text chunk − send time; ITL = every gap
// between text chunks; TPOT = (e2el − TTFT) / (output tokens − 1), for
// requests with more than one output token; output tokens from `usage`
// (else the number of text chunks). Here every latency starts at the
// request's *intended* send time, so a lagging sender or client-side queue
// shows up in the latencies rather than hiding (no coordinated omission).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace restkv::bench {

struct RequestRecord {
  int64_t index = 0;
  double intended_s = 0;  // from the start of the run
  double sent_s = 0;      // when the connection attempt began
  double done_s = 0;
  int32_t expected_input_tokens = 0;  // what the workload asked for
  int32_t expected_output_tokens = 0;
  bool ok = false;
  int http_status = 0;
  std::string error_kind;
  std::string error;
  double ttft_ms = -1;  // -1: no text chunk
  double e2el_ms = -1;
  double tpot_ms = -1;
  std::vector<double> itl_ms;
  int64_t prompt_tokens = -1;  // usage
  int64_t output_tokens = -1;  // usage, else chunks
  int64_t chunks = 0;
  int64_t streamed_tokens = -1;  // token ids counted in the stream (gRPC); -1: not carried
  bool usage_reported = false;
  std::string finish_reason;
};

// --goodput "ttft:MS tpot:MS e2el:MS" (any subset; also comma-separated).
struct GoodputSlo {
  double ttft_ms = -1, tpot_ms = -1, e2el_ms = -1;  // -1: no limit
  bool any() const { return ttft_ms >= 0 || tpot_ms >= 0 || e2el_ms >= 0; }
};
absl::StatusOr<GoodputSlo> ParseGoodput(const std::vector<std::string>& specs);
bool MeetsSlo(const RequestRecord& r, const GoodputSlo& slo);

struct Summary {
  int64_t num_requests = 0, completed = 0, failed = 0;
  int64_t total_input_tokens = 0, total_output_tokens = 0;
  double duration_s = 0;
  double request_throughput = 0, output_throughput = 0, total_token_throughput = 0;
  double request_goodput = -1;            // -1 without --goodput
  std::map<std::string, double> latency;  // "mean_ttft_ms" ... "p99_e2el_ms"
  std::map<std::string, int64_t> errors;  // by kind
  // The sender: how far behind its schedule it sent (ms).
  double mean_send_lag_ms = 0, p99_send_lag_ms = 0, max_send_lag_ms = 0;
  int64_t max_concurrent_requests = 0;
  // Requests streaming more text chunks than `usage` tokens, or (gRPC) a
  // different number of token ids.
  int64_t usage_mismatches = 0;
};

// Linear-interpolated percentile (numpy's default), p in [0, 100]; NaN when empty.
double Percentile(std::vector<double> values, double p);

// duration_s: from the start of the run to the last completion.
Summary Summarize(const std::vector<RequestRecord>& records, double duration_s,
                  const GoodputSlo& slo);

nlohmann::json SummaryJson(const Summary& s);
nlohmann::json RecordJson(const RequestRecord& r);
// A vLLM-style terminal table.
std::string FormatSummaryTable(const Summary& s, const std::string& title);

}  // namespace restkv::bench
