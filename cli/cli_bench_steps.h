// The steps of `restkv bench` (RunBench in cli_bench.cc), in the order it
// takes them, and the values they hand each other:
//
//   1. ConnectBenchTarget   --url or --grpc, and where the target's /metrics are
//   2. CheckBenchLoad       the flags that need no target: endpoint, SLOs,
//                           timeouts, arrivals, --sweep
//   3. ResolveBenchModel    --model, else the target's first listed model
//   4. ResolveBenchPrompts  the tokenizer the prompts are built with (--tokenizer's
//                           GGUF, the target's /tokenize or gRPC Tokenize, or
//                           none) and the context length
//   5. BuildBenchRequests   the replayed trace or the synthetic requests
//   6. (cli_bench.cc)       the workload, the sender, and the runs: one, or one
//                           per swept rate, each printing its table
//   7. BenchResultJson      the --result JSON
//   8. PrintBenchFooter     saturation, server metrics and workload lines
//   9. WriteBenchResult     the JSON file and tools/plot_bench.py's plots
//
// Every failing step returns a status whose message RunBench prints as
// "restkv bench: MESSAGE" before exiting 1. Steps 1, 3, 4 live in
// cli_bench_target.cc; 7, 8, 9 in cli_bench_result.cc; the rest in cli_bench.cc.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/arrivals.h"
#include "bench/grpc_client.h"
#include "bench/http_client.h"
#include "bench/prompt_builder.h"
#include "bench/runner.h"
#include "bench/summary.h"
#include "bench/trace.h"
#include "bench/workload.h"
#include "nlohmann/json.hpp"

namespace restkv::cli {

// The flags of `restkv bench`, as AddBenchCommand registers them.
struct BenchOptions {
  std::string url = "http://127.0.0.1:8000";
  std::string grpc;         // host:port: the gRPC target instead of --url
  std::string metrics_url;  // with --grpc: where restkv's /metrics is
  std::string tokenizer;    // a local GGUF whose tokenizer builds the prompts
  std::string endpoint = "/v1/completions";
  std::string model;
  std::string api_key;
  // Workload
  std::string replay;
  std::string replay_format;
  double time_scale = 1.0;
  std::string window;
  std::string long_requests = "clamp";
  int32_t max_model_len = 0;
  int32_t input_len = 256;
  int32_t output_len = 128;
  double range_ratio = 0;
  bool no_ignore_eos = false;
  double temperature = 0;
  // Load
  int64_t num_requests = 0;
  double duration_s = 0;
  double request_rate = INFINITY;
  bool rate_given = false;
  double burstiness = 1.0;
  int64_t max_concurrency = 0;
  double ramp_up_s = 0;
  double ramp_start_rate = 0;
  std::string sweep;
  uint64_t seed = 0;
  // Limits
  double request_timeout_s = 600;
  double stall_timeout_s = 60;
  double connect_timeout_s = 10;
  // Output
  std::string result;
  std::string plot_dir;
  std::vector<std::string> goodput;
  bool no_progress = false;
  bool no_metrics = false;
};

// How long each set-up call to the target (model list, tokenize, metrics) may take.
inline constexpr std::chrono::milliseconds kBenchSetupTimeout{30'000};

std::chrono::milliseconds BenchMs(double seconds);

// Step 1: the target. Exactly one of `http` and `grpc` is set.
struct BenchTarget {
  std::optional<bench::Endpoint> http;
  std::shared_ptr<bench::GrpcTarget> grpc;
  std::optional<bench::Endpoint> metrics;  // the HTTP target, or --metrics-url; else unknown
  std::string name;                        // the URL, or grpc://host:port

  bool use_grpc() const { return grpc != nullptr; }
};
absl::StatusOr<BenchTarget> ConnectBenchTarget(const BenchOptions& o);

// Step 2: the load flags, checked.
struct BenchLoad {
  bench::GoodputSlo slo;
  bench::ArrivalOptions arrival;
  std::vector<double> sweep_rates;  // empty: a single run
  bool use_trace_times = false;     // replaying at the trace's own times
};
absl::StatusOr<BenchLoad> CheckBenchLoad(const BenchOptions& o);

// Step 3: fills o->model when it is empty; returns the context length the
// gRPC model list reported (0 when none did).
absl::StatusOr<int32_t> ResolveBenchModel(const BenchTarget& target, BenchOptions* o);

// Step 4: the prompt builder and the counter that checks prompt lengths
// (absent when the target has no tokenizer). Fills o->max_model_len when it is 0.
struct BenchPrompts {
  std::optional<bench::TokenCounter> count;
  std::optional<bench::PromptBuilder> builder;  // always set once resolved
  std::string tokenizer_source;                 // for the result JSON

  const bench::TokenCounter* counter() const { return count ? &*count : nullptr; }
};
absl::StatusOr<BenchPrompts> ResolveBenchPrompts(const BenchTarget& target,
                                                 int32_t listed_max_model_len, BenchOptions* o);

// Step 5: what is to be sent, before prompt text and arrival times.
struct BenchRequests {
  std::vector<bench::TraceRequest> requests;
  int64_t trace_skipped = 0;  // rows the trace format skips, and why
  std::string trace_skipped_why;
};
absl::StatusOr<BenchRequests> BuildBenchRequests(const BenchOptions& o, const BenchLoad& load);

// restkv's counters at `metrics`, or nullopt when the target is not restkv.
std::optional<std::map<std::string, double>> ScrapeRestkvMetrics(const bench::Endpoint& metrics,
                                                                 const std::string& api_key);

// Step 6's unit: one run at one offered rate.
struct BenchStep {
  double offered_rate = 0;  // inf for trace times / closed loop
  bench::RunResult run;
  bench::Summary summary;
};
// Prints the step's summary table, and a warning when the client was the bottleneck.
void PrintBenchStep(const BenchStep& step, bool sweep);

// Everything the result JSON and the footer report.
struct BenchReport {
  const BenchOptions& options;
  const BenchTarget& target;
  const BenchLoad& load;
  const BenchRequests& requests;
  const BenchPrompts& prompts;
  const bench::Workload& workload;
  const std::optional<std::map<std::string, double>>& metrics_before;
  const std::optional<std::map<std::string, double>>& metrics_after;
  const std::vector<BenchStep>& steps;
};
// Step 7.
nlohmann::json BenchResultJson(const BenchReport& report);
// Step 8; `out` is BenchResultJson(report).
void PrintBenchFooter(const BenchReport& report, const nlohmann::json& out);
// Step 9: writes --result (or PLOT_DIR/result.json) and runs the plot script for --plot.
absl::Status WriteBenchResult(const BenchOptions& o, const nlohmann::json& out);

}  // namespace restkv::cli
