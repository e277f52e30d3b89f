// `restkv bench`: load-test any OpenAI-compatible server (restkv, vLLM,
// llama.cpp's server), or restkv's gRPC API (--grpc), with synthetic or
// replayed traffic; see README "Load testing". RunBench takes the steps of
// cli_bench_steps.h in order: it wires the flags to trace.h, arrivals.h,
// workload.h, the sender (http_client.h / grpc_client.h), runner.h and
// summary.h, and writes the table, the JSON and the plots.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli/cli.h"
#include "cli/cli_bench_steps.h"
#include "common/status_macros.h"

namespace restkv::cli {

using namespace restkv::bench;  // NOLINT: this file is the bench CLI

namespace {

absl::StatusOr<std::vector<double>> ParseRates(const std::string& spec) {
  std::vector<double> rates;
  for (absl::string_view r : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    double x = 0;
    if (!absl::SimpleAtod(r, &x) || !(x > 0) || !std::isfinite(x)) {
      return absl::InvalidArgumentError(absl::StrCat("--sweep: bad rate '", r, "'"));
    }
    rates.push_back(x);
  }
  if (rates.empty()) return absl::InvalidArgumentError("--sweep needs rates, e.g. 1,2,4,8");
  return rates;
}

}  // namespace

absl::StatusOr<BenchLoad> CheckBenchLoad(const BenchOptions& o) {
  if (o.endpoint != "/v1/completions" && o.endpoint != "/v1/chat/completions") {
    return absl::InvalidArgumentError("--endpoint must be /v1/completions or /v1/chat/completions");
  }
  BenchLoad load;
  auto slo = ParseGoodput(o.goodput);
  if (!slo.ok()) return slo.status();
  load.slo = *slo;
  if (o.long_requests != "clamp" && o.long_requests != "skip") {
    return absl::InvalidArgumentError("--long-requests must be clamp or skip");
  }
  if (o.time_scale <= 0 || !std::isfinite(o.time_scale)) {
    return absl::InvalidArgumentError("--time-scale must be > 0");
  }
  if (o.request_timeout_s <= 0 || o.stall_timeout_s <= 0 || o.connect_timeout_s <= 0) {
    return absl::InvalidArgumentError("timeouts must be > 0");
  }
  if (o.num_requests < 0 || o.duration_s < 0 || o.max_concurrency < 0) {
    return absl::InvalidArgumentError(
        "--num-requests, --duration and --max-concurrency must be >= 0");
  }
  load.arrival.rate = o.request_rate;
  load.arrival.burstiness = o.burstiness;
  load.arrival.ramp_up_s = o.ramp_up_s;
  load.arrival.ramp_start_rate = o.ramp_start_rate;
  load.arrival.seed = o.seed;
  if (absl::Status s = ValidateArrivalOptions(load.arrival); !s.ok()) return s;
  if (!o.sweep.empty()) {
    auto rates = ParseRates(o.sweep);
    if (!rates.ok()) return rates.status();
    load.sweep_rates = *rates;
  }
  load.use_trace_times = !o.replay.empty() && !o.rate_given && load.sweep_rates.empty();
  if (!load.use_trace_times && !std::isfinite(o.request_rate) && o.num_requests == 0 &&
      o.replay.empty() && o.duration_s > 0 && o.max_concurrency == 0) {
    return absl::InvalidArgumentError(
        "with --duration and no --request-rate, give --max-concurrency or --num-requests");
  }
  return load;
}

namespace {

absl::StatusOr<BenchRequests> ReplayedRequests(const BenchOptions& o) {
  auto format = ResolveTraceFormat(o.replay_format, o.replay);
  if (!format.ok()) return format.status();
  auto trace = LoadTrace(o.replay, *format);
  if (!trace.ok()) return trace.status();
  TimeWindow window;
  if (!o.window.empty()) {
    auto w = ParseTimeWindow(o.window);
    if (!w.ok()) return w.status();
    window = *w;
  }
  ApplyWindowAndScale(window, o.time_scale, &*trace);
  BenchRequests r;
  r.requests = std::move(trace->requests);
  r.trace_skipped = trace->skipped;
  r.trace_skipped_why = trace->skipped_why;
  if (o.num_requests > 0 && static_cast<int64_t>(r.requests.size()) > o.num_requests)
    r.requests.resize(static_cast<size_t>(o.num_requests));
  if (r.requests.empty())
    return absl::InvalidArgumentError("no requests left in the trace after --window");
  return r;
}

absl::StatusOr<BenchRequests> SyntheticBenchRequests(const BenchOptions& o, const BenchLoad& load) {
  SyntheticOptions syn;
  syn.input_len = o.input_len;
  syn.output_len = o.output_len;
  syn.range_ratio = o.range_ratio;
  syn.seed = o.seed;
  if (o.input_len < 1 || o.output_len < 1 || o.range_ratio < 0 || o.range_ratio >= 1) {
    return absl::InvalidArgumentError(
        "--input-len and --output-len must be >= 1, --range-ratio in [0, 1)");
  }
  syn.count = o.num_requests;
  if (syn.count == 0) {
    // Enough to keep sending for --duration at the top rate, with room to spare.
    const double top = load.sweep_rates.empty() ? o.request_rate : load.sweep_rates.back();
    syn.count = o.duration_s > 0 && std::isfinite(top)
                    ? static_cast<int64_t>(std::ceil(top * o.duration_s * 1.5)) + 16
                    : (o.duration_s > 0 ? o.max_concurrency * 1000 : 100);
  }
  BenchRequests r;
  r.requests = SyntheticRequests(syn);
  return r;
}

}  // namespace

absl::StatusOr<BenchRequests> BuildBenchRequests(const BenchOptions& o, const BenchLoad& load) {
  return o.replay.empty() ? SyntheticBenchRequests(o, load) : ReplayedRequests(o);
}

namespace {

WorkloadOptions BenchWorkloadOptions(const BenchOptions& o, bool use_grpc) {
  WorkloadOptions wo;
  wo.model = o.model;
  wo.chat = o.endpoint == "/v1/chat/completions";
  wo.ignore_eos = !o.no_ignore_eos;
  wo.temperature = o.temperature;
  wo.max_model_len = o.max_model_len;
  wo.skip_long = o.long_requests == "skip";
  wo.grpc = use_grpc;
  return wo;
}

absl::StatusOr<std::unique_ptr<RequestSender>> MakeSender(const BenchOptions& o,
                                                          const BenchTarget& target,
                                                          const WorkloadOptions& wo) {
  const StreamTimeouts timeouts{BenchMs(o.connect_timeout_s), BenchMs(o.stall_timeout_s),
                                BenchMs(o.request_timeout_s)};
  if (target.use_grpc()) return std::make_unique<GrpcSender>(target.grpc, wo, timeouts);
  auto http = HttpSender::Create(*target.http, o.endpoint, o.api_key, timeouts);
  if (!http.ok()) return http.status();
  return std::make_unique<HttpSender>(*std::move(http));
}

// What the runs share: the options, the requests and their first workload.
struct StepInputs {
  const BenchOptions& o;
  const BenchLoad& load;
  const BenchRequests& requests;
  const BenchPrompts& prompts;
  const WorkloadOptions& wo;
  const Workload& workload;
};

// The work items of run k at `rate`, with their arrival times.
std::vector<WorkItem> StepItems(const StepInputs& in, size_t k, double rate) {
  // Every swept rate after the first gets prompt text of its own (same lengths and prefix
  // structure): a rate must not be served from a prompt cache the rate before it warmed.
  std::vector<WorkItem> items =
      k == 0 ? in.workload.items
             : BuildWorkload(in.requests.requests, in.prompts.builder->WithSeed(in.o.seed + k),
                             in.wo, in.prompts.counter())
                   .items;
  if (!in.load.use_trace_times) {
    ArrivalOptions a = in.load.arrival;
    a.rate = rate;
    const std::vector<double> times =
        GenerateArrivals(a, static_cast<int64_t>(items.size()), in.o.duration_s);
    items.resize(std::min(items.size(), times.size()));
    for (size_t i = 0; i < items.size(); ++i) items[i].arrival_s = times[i];
  }
  return items;
}

// The runs: one, or one per swept rate; each prints its table as it ends.
absl::StatusOr<std::vector<BenchStep>> RunSteps(const StepInputs& in, RunOptions run) {
  std::vector<double> rates = in.load.sweep_rates;
  if (rates.empty()) rates.push_back(in.load.use_trace_times ? INFINITY : in.o.request_rate);
  std::vector<BenchStep> steps;
  for (size_t k = 0; k < rates.size(); ++k) {
    const double rate = rates[k];
    const std::vector<WorkItem> items = StepItems(in, k, rate);
    if (rates.size() > 1) run.progress_label = absl::StrFormat("[%g req/s] ", rate);
    auto result = RunLoad(items, run);
    if (!result.ok()) return result.status();
    BenchStep step;
    step.offered_rate = in.load.use_trace_times ? INFINITY : rate;
    step.summary = Summarize(result->records, result->duration_s, in.load.slo);
    step.run = std::move(*result);
    PrintBenchStep(step, rates.size() > 1);
    steps.push_back(std::move(step));
  }
  return steps;
}

// The steps of cli_bench_steps.h, in order; the first error ends the command.
absl::Status RunBenchSteps(BenchOptions& o) {
  if (o.api_key.empty()) {
    if (const char* k = std::getenv("OPENAI_API_KEY"); k != nullptr) o.api_key = k;
  }
  RESTKV_ASSIGN_OR_RETURN(const BenchTarget target, ConnectBenchTarget(o));
  RESTKV_ASSIGN_OR_RETURN(const BenchLoad load, CheckBenchLoad(o));
  RESTKV_ASSIGN_OR_RETURN(const int32_t listed_max_model_len, ResolveBenchModel(target, &o));
  RESTKV_ASSIGN_OR_RETURN(const BenchPrompts prompts,
                          ResolveBenchPrompts(target, listed_max_model_len, &o));
  RESTKV_ASSIGN_OR_RETURN(const BenchRequests requests, BuildBenchRequests(o, load));
  const WorkloadOptions wo = BenchWorkloadOptions(o, target.use_grpc());
  const Workload workload =
      BuildWorkload(requests.requests, *prompts.builder, wo, prompts.counter());
  if (workload.items.empty()) {
    return absl::InvalidArgumentError("every request was longer than the context; nothing to send");
  }
  RESTKV_ASSIGN_OR_RETURN(const std::unique_ptr<RequestSender> sender, MakeSender(o, target, wo));
  RunOptions run;
  run.sender = sender.get();
  run.max_concurrency = o.max_concurrency;
  run.send_window_s = o.duration_s;
  run.progress = !o.no_progress;

  std::optional<std::map<std::string, double>> metrics_before;
  if (!o.no_metrics && target.metrics)
    metrics_before = ScrapeRestkvMetrics(*target.metrics, o.api_key);
  if (!o.no_metrics && !target.metrics) {
    std::fprintf(stderr,
                 "restkv bench: the server's /metrics are not read over gRPC; give "
                 "--metrics-url http://host:port to include them\n");
  }
  RESTKV_ASSIGN_OR_RETURN(const std::vector<BenchStep> steps,
                          RunSteps({o, load, requests, prompts, wo, workload}, run));
  std::optional<std::map<std::string, double>> metrics_after;
  if (metrics_before) metrics_after = ScrapeRestkvMetrics(*target.metrics, o.api_key);

  const BenchReport report{o,        target,         load,          requests, prompts,
                           workload, metrics_before, metrics_after, steps};
  const nlohmann::json out = BenchResultJson(report);
  PrintBenchFooter(report, out);
  return WriteBenchResult(o, out);
}

int RunBench(BenchOptions o) {
  if (absl::Status s = RunBenchSteps(o); !s.ok()) {
    std::fprintf(stderr, "restkv bench: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Load-test an OpenAI-compatible server (or restkv's gRPC API): synthetic or "
      "replayed traffic (Mooncake, BurstGPT, ShareGPT), open or closed loop, vLLM-style "
      "latency summary");
  auto* url =
      cmd->add_option("--url", o->url, "Server root, http://host:port")->capture_default_str();
  cmd->add_option("--grpc", o->grpc,
                  "Target restkv's gRPC API (restkv.v1.Generation) at host:port instead of --url")
      ->excludes(url);
  cmd->add_option(
      "--metrics-url", o->metrics_url,
      "With --grpc: the target's HTTP root (http://host:port) for /metrics before and after");
  cmd->add_option(
      "--tokenizer", o->tokenizer,
      "Build prompts with this GGUF model's tokenizer instead of the target's /tokenize");
  cmd->add_option("--endpoint", o->endpoint,
                  "/v1/completions or /v1/chat/completions (with --grpc: text or chat input)")
      ->capture_default_str();
  cmd->add_option("--model", o->model, "Model name (default: the first of /v1/models)");
  cmd->add_option("--api-key", o->api_key, "Bearer key (default: $OPENAI_API_KEY)");
  cmd->add_option("--replay", o->replay,
                  "Trace to replay: Mooncake .jsonl, BurstGPT .csv, ShareGPT .json");
  cmd->add_option("--replay-format", o->replay_format,
                  "mooncake, burstgpt or sharegpt (default: by extension)");
  cmd->add_option("--time-scale", o->time_scale, "Multiply trace times (0.5 = twice as fast)")
      ->capture_default_str();
  cmd->add_option("--window", o->window, "Replay only START:END seconds of the trace");
  cmd->add_option("--long-requests", o->long_requests,
                  "Requests longer than the context: clamp or skip (counted either way)")
      ->capture_default_str();
  cmd->add_option("--max-model-len", o->max_model_len,
                  "Target context length (default: from the target's /tokenize, else unchecked)");
  cmd->add_option("--input-len", o->input_len, "Synthetic prompt tokens")->capture_default_str();
  cmd->add_option("--output-len", o->output_len, "Synthetic output tokens")->capture_default_str();
  cmd->add_option("--range-ratio", o->range_ratio,
                  "Synthetic lengths uniform in len*(1-r)..len*(1+r)")
      ->capture_default_str();
  cmd->add_flag("--no-ignore-eos", o->no_ignore_eos, "Do not send ignore_eos (lengths then vary)");
  cmd->add_option("--temperature", o->temperature, "Sampling temperature")->capture_default_str();
  cmd->add_option("--num-requests,-n", o->num_requests,
                  "Requests to send (synthetic default 100; replay: the first N)");
  cmd->add_option("--duration", o->duration_s, "Stop sending after this many seconds");
  auto* rate = cmd->add_option("--request-rate", o->request_rate,
                               "Poisson/gamma arrivals per second (default inf: all at once, or "
                               "the trace's own times when replaying)");
  cmd->add_option("--burstiness", o->burstiness, "Gamma shape of the gaps (1 = Poisson)")
      ->capture_default_str();
  cmd->add_option("--max-concurrency", o->max_concurrency,
                  "Most requests in flight (with no rate: a closed loop)");
  cmd->add_option("--ramp-up", o->ramp_up_s,
                  "Seconds to raise the rate linearly to --request-rate");
  cmd->add_option("--ramp-start-rate", o->ramp_start_rate, "Rate at the start of the ramp");
  cmd->add_option(
      "--sweep", o->sweep,
      "Run once per rate, e.g. 1,2,4,8, and report saturation (fresh prompt text per rate)");
  cmd->add_option("--seed", o->seed, "Seed for lengths, prompts and arrivals")
      ->capture_default_str();
  cmd->add_option("--request-timeout", o->request_timeout_s, "Seconds a request may take")
      ->capture_default_str();
  cmd->add_option("--stall-timeout", o->stall_timeout_s,
                  "Seconds without a byte before a request counts as stalled")
      ->capture_default_str();
  cmd->add_option("--connect-timeout", o->connect_timeout_s, "Seconds to connect")
      ->capture_default_str();
  cmd->add_option("--result", o->result, "Write the summary and every request as JSON");
  cmd->add_option("--plot", o->plot_dir, "Draw latency CDFs and throughput over time (PNGs) here");
  cmd->add_option("--goodput", o->goodput, "SLOs for goodput: ttft:MS tpot:MS e2el:MS");
  cmd->add_flag("--no-progress", o->no_progress, "No live progress line");
  cmd->add_flag("--no-metrics", o->no_metrics, "Do not read the target's /metrics");
  cmd->callback([o, exit_code, rate] {
    o->rate_given = rate->count() > 0;
    *exit_code = RunBench(*o);
  });
}

}  // namespace restkv::cli
