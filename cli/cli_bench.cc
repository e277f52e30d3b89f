// `restkv bench`: load-test any OpenAI-compatible server (restkv, vLLM,
// llama.cpp's server), or restkv's gRPC API (--grpc), with synthetic or
// replayed traffic; see README "Load testing". Wires the flags to trace.h,
// arrivals.h, workload.h, the sender (http_client.h / grpc_client.h),
// runner.h and summary.h, and writes the table, the JSON and the plots.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/numbers.h"
#include "bench/arrivals.h"
#include "bench/gguf_token_counter.h"
#include "bench/grpc_client.h"
#include "bench/http_client.h"
#include "bench/prompt_builder.h"
#include "bench/runner.h"
#include "bench/server_metrics.h"
#include "bench/summary.h"
#include "bench/trace.h"
#include "bench/workload.h"
#include "nlohmann/json.hpp"
#include "cli/cli.h"

namespace restkv::cli {
namespace {

using namespace restkv::bench;  // NOLINT: this file is the bench CLI
using nlohmann::json;
using std::chrono::milliseconds;

constexpr milliseconds kSetupTimeout{30'000};

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

int Fail(const std::string& message) {
  std::fprintf(stderr, "restkv bench: %s\n", message.c_str());
  return 1;
}

milliseconds Ms(double seconds) { return milliseconds(static_cast<int64_t>(seconds * 1000.0)); }

// The target's tokenizer through /tokenize (restkv and vLLM read "prompt",
// llama.cpp's server "content"); nullopt when the target has none.
struct TargetTokenizer {
  TokenCounter count;
  int32_t max_model_len = 0;  // when /tokenize reports it (restkv, vLLM)
};

std::optional<TargetTokenizer> ProbeTokenizer(const Endpoint& ep, const std::string& model,
                                              const std::string& api_key) {
  auto count = [ep, model, api_key](const std::string& text) -> absl::StatusOr<int32_t> {
    const json body = {{"model", model},      {"prompt", text},       {"content", text},
                       {"add_special_tokens", false}, {"add_special", false}};
    auto reply = HttpPostJson(ep, "/tokenize", body.dump(), api_key, kSetupTimeout);
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) {
      return absl::UnavailableError(absl::StrFormat("/tokenize answered %d", reply->status));
    }
    json j = json::parse(reply->body, nullptr, false);
    if (!j.is_object() || !j.contains("tokens") || !j["tokens"].is_array()) {
      return absl::UnavailableError("/tokenize gave no 'tokens' array");
    }
    return static_cast<int32_t>(j["tokens"].size());
  };
  const json probe = {{"model", model}, {"prompt", " the"}, {"content", " the"},
                      {"add_special_tokens", false}, {"add_special", false}};
  auto reply = HttpPostJson(ep, "/tokenize", probe.dump(), api_key, kSetupTimeout);
  if (!reply.ok() || reply->status != 200) return std::nullopt;
  json j = json::parse(reply->body, nullptr, false);
  if (!j.is_object() || !j.contains("tokens")) return std::nullopt;
  TargetTokenizer t;
  t.count = count;
  if (j.contains("max_model_len") && j["max_model_len"].is_number_integer())
    t.max_model_len = j["max_model_len"].get<int32_t>();
  return t;
}

// The same through the gRPC target's Tokenize; max_model_len from it too.
std::optional<TargetTokenizer> ProbeGrpcTokenizer(std::shared_ptr<GrpcTarget> target,
                                                  const std::string& model) {
  auto probe = target->Tokenize(model, " the", kSetupTimeout);
  if (!probe.ok()) {
    std::fprintf(stderr, "restkv bench: gRPC Tokenize failed (%s)\n",
                 std::string(probe.status().message()).c_str());
    return std::nullopt;
  }
  TargetTokenizer t;
  t.count = [target, model](const std::string& text) -> absl::StatusOr<int32_t> {
    auto n = target->Tokenize(model, text, kSetupTimeout);
    if (!n.ok()) return n.status();
    return n->count;
  };
  t.max_model_len = probe->max_model_len;
  return t;
}

absl::StatusOr<std::string> FirstModel(const Endpoint& ep, const std::string& api_key) {
  auto reply = HttpGet(ep, "/v1/models", api_key, kSetupTimeout);
  if (!reply.ok()) return reply.status();
  if (reply->status != 200) {
    return absl::UnavailableError(
        absl::StrFormat("GET /v1/models answered %d: %s", reply->status, reply->body.substr(0, 200)));
  }
  json j = json::parse(reply->body, nullptr, false);
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].contains("id")) {
    return absl::UnavailableError("GET /v1/models listed no model; give --model");
  }
  return j["data"][0]["id"].get<std::string>();
}

// restkv's counters, or nullopt when the target is not restkv (or --no-metrics).
std::optional<std::map<std::string, double>> ScrapeRestkv(const Endpoint& ep,
                                                          const std::string& api_key) {
  auto reply = HttpGet(ep, "/metrics", api_key, kSetupTimeout);
  if (!reply.ok() || reply->status != 200) return std::nullopt;
  auto m = ParsePrometheus(reply->body, "restkv:");
  if (m.empty()) return std::nullopt;
  return m;
}

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

struct StepResult {
  double offered_rate = 0;  // inf for trace times / closed loop
  RunResult run;
  Summary summary;
};

json StepJson(const StepResult& s, bool with_requests) {
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
bool ClientBound(const StepResult& s) {
  const double util = s.run.duration_s > 0 ? s.run.client_cpu_s / s.run.duration_s : 0;
  return util > 0.9 || s.summary.p99_send_lag_ms > 50;
}

int RunBench(BenchOptions o) {
  if (o.api_key.empty()) {
    if (const char* k = std::getenv("OPENAI_API_KEY"); k != nullptr) o.api_key = k;
  }
  const bool use_grpc = !o.grpc.empty();
  absl::StatusOr<Endpoint> ep = absl::UnavailableError("no HTTP target");
  std::shared_ptr<GrpcTarget> grpc_target;
  if (use_grpc) {
    auto t = GrpcTarget::Create(o.grpc, o.api_key);
    if (!t.ok()) return Fail(std::string(t.status().message()));
    grpc_target = *t;
  } else {
    ep = ParseUrl(o.url);
    if (!ep.ok()) return Fail(std::string(ep.status().message()));
  }
  // Where restkv's /metrics is: the HTTP target, or --metrics-url with --grpc.
  std::optional<Endpoint> metrics_ep;
  if (!use_grpc) metrics_ep = *ep;
  if (!o.metrics_url.empty()) {
    auto m = ParseUrl(o.metrics_url);
    if (!m.ok()) return Fail("--metrics-url: " + std::string(m.status().message()));
    if (absl::EndsWith(m->base_path, "/metrics")) m->base_path.resize(m->base_path.size() - 8);
    metrics_ep = *m;
  }
  if (o.endpoint != "/v1/completions" && o.endpoint != "/v1/chat/completions") {
    return Fail("--endpoint must be /v1/completions or /v1/chat/completions");
  }
  auto slo = ParseGoodput(o.goodput);
  if (!slo.ok()) return Fail(std::string(slo.status().message()));
  if (o.long_requests != "clamp" && o.long_requests != "skip") {
    return Fail("--long-requests must be clamp or skip");
  }
  if (o.time_scale <= 0 || !std::isfinite(o.time_scale)) return Fail("--time-scale must be > 0");
  if (o.request_timeout_s <= 0 || o.stall_timeout_s <= 0 || o.connect_timeout_s <= 0) {
    return Fail("timeouts must be > 0");
  }
  if (o.num_requests < 0 || o.duration_s < 0 || o.max_concurrency < 0) {
    return Fail("--num-requests, --duration and --max-concurrency must be >= 0");
  }
  ArrivalOptions arrival;
  arrival.rate = o.request_rate;
  arrival.burstiness = o.burstiness;
  arrival.ramp_up_s = o.ramp_up_s;
  arrival.ramp_start_rate = o.ramp_start_rate;
  arrival.seed = o.seed;
  if (absl::Status s = ValidateArrivalOptions(arrival); !s.ok()) return Fail(std::string(s.message()));
  std::vector<double> sweep_rates;
  if (!o.sweep.empty()) {
    auto rates = ParseRates(o.sweep);
    if (!rates.ok()) return Fail(std::string(rates.status().message()));
    sweep_rates = *rates;
  }
  const bool use_trace_times = !o.replay.empty() && !o.rate_given && sweep_rates.empty();
  if (!use_trace_times && !std::isfinite(o.request_rate) && o.num_requests == 0 &&
      o.replay.empty() && o.duration_s > 0 && o.max_concurrency == 0) {
    return Fail("with --duration and no --request-rate, give --max-concurrency or --num-requests");
  }

  // The target: model, tokenizer, context length.
  const std::string target_name = use_grpc ? "grpc://" + grpc_target->address() : o.url;
  int32_t listed_max_model_len = 0;
  if (o.model.empty()) {
    if (use_grpc) {
      // The first call: it waits for the channel to connect, up to --connect-timeout.
      auto models = grpc_target->ListModels(Ms(o.connect_timeout_s));
      if (!models.ok()) return Fail(std::string(models.status().message()));
      if (models->empty()) return Fail("gRPC ListModels listed no model; give --model");
      o.model = models->front().id;
      listed_max_model_len = models->front().max_model_len;
    } else {
      auto m = FirstModel(*ep, o.api_key);
      if (!m.ok()) return Fail(absl::StrCat("cannot query ", o.url, ": ", m.status().message()));
      o.model = *m;
    }
  }
  // Prompts are built with --tokenizer's GGUF when given, else with the
  // target's own tokenizer (/tokenize, gRPC Tokenize), else unchecked.
  std::optional<TargetTokenizer> tok;
  std::string tokenizer_source;
  if (!o.tokenizer.empty()) {
    auto local = LoadGgufTokenizer(o.tokenizer);
    if (!local.ok()) return Fail(std::string(local.status().message()));
    tok = TargetTokenizer{local->count, 0};
    tokenizer_source = "local GGUF " + o.tokenizer;
    // The target's context when it reports one, else the model file's.
    std::optional<TargetTokenizer> remote;
    if (o.max_model_len == 0 && !use_grpc) remote = ProbeTokenizer(*ep, o.model, o.api_key);
    tok->max_model_len = remote ? remote->max_model_len : listed_max_model_len;
    if (tok->max_model_len == 0) tok->max_model_len = local->context_length;
  } else if (use_grpc) {
    tok = ProbeGrpcTokenizer(grpc_target, o.model);
    tokenizer_source = "target gRPC Tokenize";
  } else {
    tok = ProbeTokenizer(*ep, o.model, o.api_key);
    tokenizer_source = "target /tokenize";
  }
  std::optional<PromptBuilder> builder;
  if (tok) {
    auto b = PromptBuilder::FromTokenizer(tok->count, o.seed);
    if (!b.ok()) return Fail(std::string(b.status().message()));
    builder = std::move(*b);
    if (o.max_model_len == 0) o.max_model_len = tok->max_model_len;
  } else {
    std::fprintf(stderr,
                 "restkv bench: %s has no tokenizer endpoint; prompt lengths assume one token a "
                 "word (give --tokenizer MODEL.gguf for exact lengths)\n",
                 target_name.c_str());
    builder = PromptBuilder::Unchecked(o.seed);
    tokenizer_source = "none (one token a word assumed)";
  }
  if (o.max_model_len == 0) o.max_model_len = listed_max_model_len;

  // The requests.
  std::vector<TraceRequest> requests;
  int64_t trace_skipped = 0;
  std::string trace_skipped_why;
  if (!o.replay.empty()) {
    auto format = ResolveTraceFormat(o.replay_format, o.replay);
    if (!format.ok()) return Fail(std::string(format.status().message()));
    auto trace = LoadTrace(o.replay, *format);
    if (!trace.ok()) return Fail(std::string(trace.status().message()));
    TimeWindow window;
    if (!o.window.empty()) {
      auto w = ParseTimeWindow(o.window);
      if (!w.ok()) return Fail(std::string(w.status().message()));
      window = *w;
    }
    ApplyWindowAndScale(window, o.time_scale, &*trace);
    requests = std::move(trace->requests);
    trace_skipped = trace->skipped;
    trace_skipped_why = trace->skipped_why;
    if (o.num_requests > 0 && static_cast<int64_t>(requests.size()) > o.num_requests)
      requests.resize(static_cast<size_t>(o.num_requests));
    if (requests.empty()) return Fail("no requests left in the trace after --window");
  } else {
    SyntheticOptions syn;
    syn.input_len = o.input_len;
    syn.output_len = o.output_len;
    syn.range_ratio = o.range_ratio;
    syn.seed = o.seed;
    if (o.input_len < 1 || o.output_len < 1 || o.range_ratio < 0 || o.range_ratio >= 1) {
      return Fail("--input-len and --output-len must be >= 1, --range-ratio in [0, 1)");
    }
    syn.count = o.num_requests;
    if (syn.count == 0) {
      const double top = sweep_rates.empty() ? o.request_rate : sweep_rates.back();
      syn.count = o.duration_s > 0 && std::isfinite(top)
                      ? static_cast<int64_t>(std::ceil(top * o.duration_s * 1.5)) + 16
                      : (o.duration_s > 0 ? o.max_concurrency * 1000 : 100);
    }
    requests = SyntheticRequests(syn);
  }
  WorkloadOptions wo;
  wo.model = o.model;
  wo.chat = o.endpoint == "/v1/chat/completions";
  wo.ignore_eos = !o.no_ignore_eos;
  wo.temperature = o.temperature;
  wo.max_model_len = o.max_model_len;
  wo.skip_long = o.long_requests == "skip";
  wo.grpc = use_grpc;
  Workload workload = BuildWorkload(requests, *builder, wo, tok ? &tok->count : nullptr);
  if (workload.items.empty()) return Fail("every request was longer than the context; nothing to send");

  const StreamTimeouts timeouts{Ms(o.connect_timeout_s), Ms(o.stall_timeout_s),
                                Ms(o.request_timeout_s)};
  std::unique_ptr<RequestSender> sender;
  if (use_grpc) {
    sender = std::make_unique<GrpcSender>(grpc_target, wo, timeouts);
  } else {
    auto http = HttpSender::Create(*ep, o.endpoint, o.api_key, timeouts);
    if (!http.ok()) return Fail(std::string(http.status().message()));
    sender = std::make_unique<HttpSender>(*std::move(http));
  }
  RunOptions run;
  run.sender = sender.get();
  run.max_concurrency = o.max_concurrency;
  run.send_window_s = o.duration_s;
  run.progress = !o.no_progress;

  // The steps: one run, or one per swept rate.
  std::vector<double> rates = sweep_rates;
  if (rates.empty()) rates.push_back(use_trace_times ? INFINITY : o.request_rate);
  std::optional<std::map<std::string, double>> metrics_before;
  if (!o.no_metrics && metrics_ep) metrics_before = ScrapeRestkv(*metrics_ep, o.api_key);
  if (!o.no_metrics && !metrics_ep) {
    std::fprintf(stderr, "restkv bench: the server's /metrics are not read over gRPC; give "
                         "--metrics-url http://host:port to include them\n");
  }
  std::vector<StepResult> steps;
  for (size_t k = 0; k < rates.size(); ++k) {
    const double rate = rates[k];
    // Every swept rate after the first gets prompt text of its own (same lengths and prefix
    // structure): a rate must not be served from a prompt cache the rate before it warmed.
    std::vector<WorkItem> items =
        k == 0 ? workload.items
               : BuildWorkload(requests, builder->WithSeed(o.seed + k), wo, tok ? &tok->count : nullptr).items;
    if (!use_trace_times) {
      ArrivalOptions a = arrival;
      a.rate = rate;
      const std::vector<double> times =
          GenerateArrivals(a, static_cast<int64_t>(items.size()), o.duration_s);
      items.resize(std::min(items.size(), times.size()));
      for (size_t i = 0; i < items.size(); ++i) items[i].arrival_s = times[i];
    }
    if (rates.size() > 1) run.progress_label = absl::StrFormat("[%g req/s] ", rate);
    auto result = RunLoad(items, run);
    if (!result.ok()) return Fail(std::string(result.status().message()));
    StepResult step;
    step.offered_rate = use_trace_times ? INFINITY : rate;
    step.summary = Summarize(result->records, result->duration_s, *slo);
    step.run = std::move(*result);
    const std::string title =
        rates.size() > 1 ? absl::StrFormat("Serving Benchmark Result (%g req/s)", rate)
                         : std::string("Serving Benchmark Result");
    std::printf("%s", FormatSummaryTable(step.summary, title).c_str());
    if (ClientBound(step)) {
      std::printf("WARNING: the client may have been the bottleneck (CPU %.0f%% of one core, "
                  "p99 send lag %.1f ms)\n",
                  100.0 * step.run.client_cpu_s / std::max(1e-9, step.run.duration_s),
                  step.summary.p99_send_lag_ms);
    }
    std::fflush(stdout);
    steps.push_back(std::move(step));
  }
  std::optional<std::map<std::string, double>> metrics_after;
  if (metrics_before) metrics_after = ScrapeRestkv(*metrics_ep, o.api_key);

  json out = {
      {"tool", "restkv bench"},
      {"target",
       {{"transport", use_grpc ? "grpc" : "http"},
        {"url", use_grpc ? json(nullptr) : json(o.url)},
        {"grpc", use_grpc ? json(grpc_target->address()) : json(nullptr)},
        {"endpoint", use_grpc ? json("restkv.v1.Generation/Generate") : json(o.endpoint)},
        {"model", o.model}}},
      {"config",
       {{"replay", o.replay},
        {"time_scale", o.time_scale},
        {"window", o.window},
        {"input_len", o.input_len},
        {"output_len", o.output_len},
        {"range_ratio", o.range_ratio},
        {"request_rate", std::isfinite(o.request_rate) ? json(o.request_rate) : json("inf")},
        {"use_trace_times", use_trace_times},
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
        {"goodput", absl::StrJoin(o.goodput, " ")}}},
      {"workload",
       {{"requests", workload.items.size()},
        {"clamped_to_context", workload.clamped},
        {"skipped_too_long", workload.skipped_long},
        {"trace_rows_skipped", trace_skipped},
        {"trace_rows_skipped_why", trace_skipped_why},
        {"tokenizer", tokenizer_source},
        {"prompt_words", builder->words().size()}}},
  };
  if (metrics_before && metrics_after) out["server_metrics"] = MetricsDelta(*metrics_before, *metrics_after);
  if (steps.size() == 1) {
    json step = StepJson(steps[0], true);
    out["summary"] = step["summary"];
    out["requests"] = step["requests"];
    out["not_sent"] = step["not_sent"];
    out["start_monotonic_s"] = step["start_monotonic_s"];
    out["client"] = {{"cpu_s", steps[0].run.client_cpu_s},
                     {"bottleneck", ClientBound(steps[0])}};
  } else {
    json arr = json::array();
    double best = 0, knee = -1;
    for (const StepResult& s : steps) {
      arr.push_back(StepJson(s, true));
      best = std::max(best, s.summary.request_throughput);
      if (knee < 0 && s.summary.request_throughput < 0.9 * s.offered_rate) knee = s.offered_rate;
    }
    out["sweep"] = std::move(arr);
    // What the server sustained at best, and the first offered rate it could not keep up with.
    out["saturation_request_rate"] = best;
    out["first_unsustained_rate"] = knee < 0 ? json(nullptr) : json(knee);
    std::printf("Saturation: at most %.2f req/s completed%s\n", best,
                knee < 0 ? " (every swept rate was sustained)"
                         : absl::StrFormat("; %g req/s was not sustained", knee).c_str());
  }
  if (metrics_before && metrics_after) {
    const json& d = out["server_metrics"]["delta"];
    // Summed over label sets: "restkv:x_total{model_name=...}".
    auto get = [&](const std::string& name) {
      double sum = 0;
      for (const auto& [k, v] : d.items()) {
        if (k == name || k.rfind(name + "{", 0) == 0) sum += v.get<double>();
      }
      return sum;
    };
    std::printf("restkv /metrics during the run: %.0f preemptions, %.0f KV pages released by "
                "eviction, %.0f tokens evicted\n",
                get("restkv:num_preemptions_total"), get("restkv:kv_pages_released_by_eviction_total"),
                get("restkv:kv_tokens_evicted_total"));
  }
  if (workload.clamped + workload.skipped_long + trace_skipped > 0) {
    std::printf("Workload: %lld clamped to the context, %lld skipped as too long, %lld trace rows "
                "skipped (%s)\n",
                static_cast<long long>(workload.clamped), static_cast<long long>(workload.skipped_long),
                static_cast<long long>(trace_skipped), trace_skipped_why.c_str());
  }
  std::string result_path = o.result;
  if (result_path.empty() && !o.plot_dir.empty()) {
    std::filesystem::create_directories(o.plot_dir);
    result_path = (std::filesystem::path(o.plot_dir) / "result.json").string();
  }
  if (!result_path.empty()) {
    std::ofstream f(result_path);
    f << out.dump(1) << "\n";
    if (!f) return Fail("cannot write " + result_path);
    std::printf("Result: %s\n", result_path.c_str());
  }
  if (!o.plot_dir.empty()) {
    // tools/plot_bench.py next to the source tree the binary was built in.
    std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe");
    std::filesystem::path root = exe.parent_path().parent_path();
    std::filesystem::path script = root / "tools" / "plot_bench.py";
    if (const char* env = std::getenv("RESTKV_PLOT_SCRIPT"); env != nullptr) script = env;
    std::filesystem::path python = root / ".venv" / "bin" / "python";
    const std::string py = std::filesystem::exists(python) ? python.string() : "python3";
    const std::string cmd = absl::StrFormat("'%s' '%s' '%s' '%s'", py, script.string(),
                                            result_path, o.plot_dir);
    if (std::system(cmd.c_str()) != 0) return Fail("plotting failed: " + cmd);
  }
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Load-test an OpenAI-compatible server (or restkv's gRPC API): synthetic or "
               "replayed traffic (Mooncake, BurstGPT, ShareGPT), open or closed loop, vLLM-style "
               "latency summary");
  auto* url = cmd->add_option("--url", o->url, "Server root, http://host:port")->capture_default_str();
  cmd->add_option("--grpc", o->grpc,
                  "Target restkv's gRPC API (restkv.v1.Generation) at host:port instead of --url")
      ->excludes(url);
  cmd->add_option("--metrics-url", o->metrics_url,
                  "With --grpc: the target's HTTP root (http://host:port) for /metrics before and after");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Build prompts with this GGUF model's tokenizer instead of the target's /tokenize");
  cmd->add_option("--endpoint", o->endpoint,
                  "/v1/completions or /v1/chat/completions (with --grpc: text or chat input)")
      ->capture_default_str();
  cmd->add_option("--model", o->model, "Model name (default: the first of /v1/models)");
  cmd->add_option("--api-key", o->api_key, "Bearer key (default: $OPENAI_API_KEY)");
  cmd->add_option("--replay", o->replay, "Trace to replay: Mooncake .jsonl, BurstGPT .csv, ShareGPT .json");
  cmd->add_option("--replay-format", o->replay_format, "mooncake, burstgpt or sharegpt (default: by extension)");
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
  cmd->add_option("--ramp-up", o->ramp_up_s, "Seconds to raise the rate linearly to --request-rate");
  cmd->add_option("--ramp-start-rate", o->ramp_start_rate, "Rate at the start of the ramp");
  cmd->add_option("--sweep", o->sweep, "Run once per rate, e.g. 1,2,4,8, and report saturation (fresh prompt text per rate)");
  cmd->add_option("--seed", o->seed, "Seed for lengths, prompts and arrivals")->capture_default_str();
  cmd->add_option("--request-timeout", o->request_timeout_s, "Seconds a request may take")
      ->capture_default_str();
  cmd->add_option("--stall-timeout", o->stall_timeout_s,
                  "Seconds without a byte before a request counts as stalled")
      ->capture_default_str();
  cmd->add_option("--connect-timeout", o->connect_timeout_s, "Seconds to connect")->capture_default_str();
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
