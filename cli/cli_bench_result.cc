// What `restkv bench` reports: each run's table, the result JSON, the footer
// lines and the plots (cli_bench_steps.h steps 6's tables, 7, 8, 9).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/server_metrics.h"
#include "cli/cli_bench_steps.h"

namespace restkv::cli {
namespace {

using namespace restkv::bench;  // NOLINT: this file is the bench CLI
using nlohmann::json;

json StepJson(const BenchStep& s, bool with_requests) {
  json j = {{"request_rate", std::isfinite(s.offered_rate) ? json(s.offered_rate) : json("inf")},
            {"summary", SummaryJson(s.summary)},
            {"not_sent", s.run.not_sent},
            {"client_cpu_s", s.run.client_cpu_s},
            // Lets tests line records up with a server's own CLOCK_MONOTONIC timestamps.
            {"start_monotonic_s", s.run.start_monotonic_s}};
  if (with_requests) {
    json reqs = json::array();
    for (const RequestRecord& r : s.run.records) reqs.push_back(RecordJson(r));
    j["requests"] = std::move(reqs);
  }
  return j;
}

// The client was the bottleneck if its one I/O thread was nearly always
// busy or it fell far behind its schedule.
bool ClientBound(const BenchStep& s) {
  const double util = s.run.duration_s > 0 ? s.run.client_cpu_s / s.run.duration_s : 0;
  return util > 0.9 || s.summary.p99_send_lag_ms > 50;
}

// What the server sustained at best over a sweep, and the first offered rate
// it could not keep up with (-1: it kept up with every one).
struct Saturation {
  double best = 0;
  double knee = -1;
};

Saturation SweepSaturation(const std::vector<BenchStep>& steps) {
  Saturation s;
  for (const BenchStep& step : steps) {
    s.best = std::max(s.best, step.summary.request_throughput);
    if (s.knee < 0 && step.summary.request_throughput < 0.9 * step.offered_rate) {
      s.knee = step.offered_rate;
    }
  }
  return s;
}

json TargetJson(const BenchReport& r) {
  const BenchOptions& o = r.options;
  const bool use_grpc = r.target.use_grpc();
  return {{"transport", use_grpc ? "grpc" : "http"},
          {"url", use_grpc ? json(nullptr) : json(o.url)},
          {"grpc", use_grpc ? json(r.target.grpc->address()) : json(nullptr)},
          {"endpoint", use_grpc ? json("restkv.v1.Generation/Generate") : json(o.endpoint)},
          {"model", o.model}};
}

json ConfigJson(const BenchReport& r) {
  const BenchOptions& o = r.options;
  return {{"replay", o.replay},
          {"time_scale", o.time_scale},
          {"window", o.window},
          {"input_len", o.input_len},
          {"output_len", o.output_len},
          {"range_ratio", o.range_ratio},
          {"request_rate", std::isfinite(o.request_rate) ? json(o.request_rate) : json("inf")},
          {"use_trace_times", r.load.use_trace_times},
          {"burstiness", o.burstiness},
          {"max_concurrency", o.max_concurrency},
          {"ramp_up_s", o.ramp_up_s},
          {"ramp_start_rate", o.ramp_start_rate},
          {"num_requests", o.num_requests},
          {"duration_s", o.duration_s},
          {"seed", o.seed},
          {"ignore_eos", !o.no_ignore_eos},
          {"temperature", o.temperature},
          {"max_model_len", o.max_model_len},
          {"goodput", absl::StrJoin(o.goodput, " ")}};
}

json WorkloadJson(const BenchReport& r) {
  return {{"requests", r.workload.items.size()},
          {"clamped_to_context", r.workload.clamped},
          {"skipped_too_long", r.workload.skipped_long},
          {"trace_rows_skipped", r.requests.trace_skipped},
          {"trace_rows_skipped_why", r.requests.trace_skipped_why},
          {"tokenizer", r.prompts.tokenizer_source},
          {"prompt_words", r.prompts.builder->words().size()}};
}

// The steps: a single run's figures at the top level, a sweep's in "sweep".
void AddStepsJson(const std::vector<BenchStep>& steps, json* out) {
  if (steps.size() == 1) {
    json step = StepJson(steps[0], true);
    (*out)["summary"] = step["summary"];
    (*out)["requests"] = step["requests"];
    (*out)["not_sent"] = step["not_sent"];
    (*out)["start_monotonic_s"] = step["start_monotonic_s"];
    (*out)["client"] = {{"cpu_s", steps[0].run.client_cpu_s},
                        {"bottleneck", ClientBound(steps[0])}};
    return;
  }
  json arr = json::array();
  for (const BenchStep& s : steps) arr.push_back(StepJson(s, true));
  (*out)["sweep"] = std::move(arr);
  const Saturation sat = SweepSaturation(steps);
  (*out)["saturation_request_rate"] = sat.best;
  (*out)["first_unsustained_rate"] = sat.knee < 0 ? json(nullptr) : json(sat.knee);
}

void PrintServerMetrics(const json& delta) {
  // Summed over label sets: "restkv:x_total{model_name=...}".
  auto get = [&](const std::string& name) {
    double sum = 0;
    for (const auto& [k, v] : delta.items()) {
      if (k == name || k.rfind(name + "{", 0) == 0) sum += v.get<double>();
    }
    return sum;
  };
  std::printf(
      "restkv /metrics during the run: %.0f preemptions, %.0f KV pages released by "
      "eviction, %.0f tokens evicted\n",
      get("restkv:num_preemptions_total"), get("restkv:kv_pages_released_by_eviction_total"),
      get("restkv:kv_tokens_evicted_total"));
}

// tools/plot_bench.py next to the source tree the binary was built in.
absl::Status RunPlotScript(const std::string& result_path, const std::string& plot_dir) {
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe");
  std::filesystem::path root = exe.parent_path().parent_path();
  std::filesystem::path script = root / "tools" / "plot_bench.py";
  if (const char* env = std::getenv("RESTKV_PLOT_SCRIPT"); env != nullptr) script = env;
  std::filesystem::path python = root / ".venv" / "bin" / "python";
  const std::string py = std::filesystem::exists(python) ? python.string() : "python3";
  const std::string cmd =
      absl::StrFormat("'%s' '%s' '%s' '%s'", py, script.string(), result_path, plot_dir);
  if (std::system(cmd.c_str()) != 0) return absl::InternalError("plotting failed: " + cmd);
  return absl::OkStatus();
}

}  // namespace

void PrintBenchStep(const BenchStep& step, bool sweep) {
  const std::string title =
      sweep ? absl::StrFormat("Serving Benchmark Result (%g req/s)", step.offered_rate)
            : std::string("Serving Benchmark Result");
  std::printf("%s", FormatSummaryTable(step.summary, title).c_str());
  if (ClientBound(step)) {
    std::printf(
        "WARNING: the client may have been the bottleneck (CPU %.0f%% of one core, "
        "p99 send lag %.1f ms)\n",
        100.0 * step.run.client_cpu_s / std::max(1e-9, step.run.duration_s),
        step.summary.p99_send_lag_ms);
  }
  std::fflush(stdout);
}

json BenchResultJson(const BenchReport& report) {
  json out = {
      {"tool", "restkv bench"},
      {"target", TargetJson(report)},
      {"config", ConfigJson(report)},
      {"workload", WorkloadJson(report)},
  };
  if (report.metrics_before && report.metrics_after) {
    out["server_metrics"] = MetricsDelta(*report.metrics_before, *report.metrics_after);
  }
  AddStepsJson(report.steps, &out);
  return out;
}

void PrintBenchFooter(const BenchReport& report, const json& out) {
  if (report.steps.size() > 1) {
    const Saturation sat = SweepSaturation(report.steps);
    std::printf("Saturation: at most %.2f req/s completed%s\n", sat.best,
                sat.knee < 0 ? " (every swept rate was sustained)"
                             : absl::StrFormat("; %g req/s was not sustained", sat.knee).c_str());
  }
  if (report.metrics_before && report.metrics_after)
    PrintServerMetrics(out["server_metrics"]["delta"]);
  const Workload& w = report.workload;
  const BenchRequests& r = report.requests;
  if (w.clamped + w.skipped_long + r.trace_skipped > 0) {
    std::printf(
        "Workload: %lld clamped to the context, %lld skipped as too long, %lld trace rows "
        "skipped (%s)\n",
        static_cast<long long>(w.clamped), static_cast<long long>(w.skipped_long),
        static_cast<long long>(r.trace_skipped), r.trace_skipped_why.c_str());
  }
}

absl::Status WriteBenchResult(const BenchOptions& o, const json& out) {
  std::string result_path = o.result;
  if (result_path.empty() && !o.plot_dir.empty()) {
    std::filesystem::create_directories(o.plot_dir);
    result_path = (std::filesystem::path(o.plot_dir) / "result.json").string();
  }
  if (!result_path.empty()) {
    std::ofstream f(result_path);
    f << out.dump(1) << "\n";
    if (!f) return absl::UnavailableError("cannot write " + result_path);
    std::printf("Result: %s\n", result_path.c_str());
  }
  if (!o.plot_dir.empty()) return RunPlotScript(result_path, o.plot_dir);
  return absl::OkStatus();
}

}  // namespace restkv::cli
