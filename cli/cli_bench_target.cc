// `restkv bench`'s view of its target: the address, the model, the tokenizer
// the prompts are built with, and restkv's /metrics (cli_bench_steps.h steps 1, 3, 4).
#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/gguf_token_counter.h"
#include "bench/server_metrics.h"
#include "cli/cli_bench_steps.h"

namespace restkv::cli {
namespace {

using namespace restkv::bench;  // NOLINT: this file is the bench CLI
using nlohmann::json;

// The target's tokenizer through /tokenize (restkv and vLLM read "prompt",
// llama.cpp's server "content"); nullopt when the target has none.
struct TargetTokenizer {
  TokenCounter count;
  int32_t max_model_len = 0;  // when /tokenize reports it (restkv, vLLM)
};

std::optional<TargetTokenizer> ProbeTokenizer(const Endpoint& ep, const std::string& model,
                                              const std::string& api_key) {
  auto count = [ep, model, api_key](const std::string& text) -> absl::StatusOr<int32_t> {
    const json body = {{"model", model},
                       {"prompt", text},
                       {"content", text},
                       {"add_special_tokens", false},
                       {"add_special", false}};
    auto reply = HttpPostJson(ep, "/tokenize", body.dump(), api_key, kBenchSetupTimeout);
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
  const json probe = {{"model", model},
                      {"prompt", " the"},
                      {"content", " the"},
                      {"add_special_tokens", false},
                      {"add_special", false}};
  auto reply = HttpPostJson(ep, "/tokenize", probe.dump(), api_key, kBenchSetupTimeout);
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
std::optional<TargetTokenizer> ProbeGrpcTokenizer(const std::shared_ptr<GrpcTarget>& target,
                                                  const std::string& model) {
  auto probe = target->Tokenize(model, " the", kBenchSetupTimeout);
  if (!probe.ok()) {
    std::fprintf(stderr, "restkv bench: gRPC Tokenize failed (%s)\n",
                 std::string(probe.status().message()).c_str());
    return std::nullopt;
  }
  TargetTokenizer t;
  t.count = [target, model](const std::string& text) -> absl::StatusOr<int32_t> {
    auto n = target->Tokenize(model, text, kBenchSetupTimeout);
    if (!n.ok()) return n.status();
    return n->count;
  };
  t.max_model_len = probe->max_model_len;
  return t;
}

absl::StatusOr<std::string> FirstModel(const Endpoint& ep, const std::string& api_key) {
  auto reply = HttpGet(ep, "/v1/models", api_key, kBenchSetupTimeout);
  if (!reply.ok()) return reply.status();
  if (reply->status != 200) {
    return absl::UnavailableError(absl::StrFormat("GET /v1/models answered %d: %s", reply->status,
                                                  reply->body.substr(0, 200)));
  }
  json j = json::parse(reply->body, nullptr, false);
  if (!j.is_object() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].contains("id")) {
    return absl::UnavailableError("GET /v1/models listed no model; give --model");
  }
  return j["data"][0]["id"].get<std::string>();
}

// Prompts from --tokenizer's GGUF; the context from the target when it
// reports one, else from the model list, else from the model file.
absl::StatusOr<TargetTokenizer> LocalTokenizer(const BenchTarget& target,
                                               int32_t listed_max_model_len,
                                               const BenchOptions& o) {
  auto local = LoadGgufTokenizer(o.tokenizer);
  if (!local.ok()) return local.status();
  TargetTokenizer tok{local->count, 0};
  std::optional<TargetTokenizer> remote;
  if (o.max_model_len == 0 && !target.use_grpc())
    remote = ProbeTokenizer(*target.http, o.model, o.api_key);
  tok.max_model_len = remote ? remote->max_model_len : listed_max_model_len;
  if (tok.max_model_len == 0) tok.max_model_len = local->context_length;
  return tok;
}

}  // namespace

std::chrono::milliseconds BenchMs(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

absl::StatusOr<BenchTarget> ConnectBenchTarget(const BenchOptions& o) {
  BenchTarget target;
  if (!o.grpc.empty()) {
    auto t = GrpcTarget::Create(o.grpc, o.api_key);
    if (!t.ok()) return t.status();
    target.grpc = *t;
    target.name = "grpc://" + target.grpc->address();
  } else {
    auto ep = ParseUrl(o.url);
    if (!ep.ok()) return ep.status();
    target.http = *ep;
    target.metrics = *ep;
    target.name = o.url;
  }
  // Where restkv's /metrics is: the HTTP target, or --metrics-url with --grpc.
  if (!o.metrics_url.empty()) {
    auto m = ParseUrl(o.metrics_url);
    if (!m.ok())
      return absl::InvalidArgumentError("--metrics-url: " + std::string(m.status().message()));
    if (absl::EndsWith(m->base_path, "/metrics")) m->base_path.resize(m->base_path.size() - 8);
    target.metrics = *m;
  }
  return target;
}

absl::StatusOr<int32_t> ResolveBenchModel(const BenchTarget& target, BenchOptions* o) {
  if (!o->model.empty()) return 0;
  if (target.use_grpc()) {
    // The first call: it waits for the channel to connect, up to --connect-timeout.
    auto models = target.grpc->ListModels(BenchMs(o->connect_timeout_s));
    if (!models.ok()) return models.status();
    if (models->empty())
      return absl::UnavailableError("gRPC ListModels listed no model; give --model");
    o->model = models->front().id;
    return models->front().max_model_len;
  }
  auto m = FirstModel(*target.http, o->api_key);
  if (!m.ok()) {
    return absl::UnavailableError(
        absl::StrCat("cannot query ", o->url, ": ", m.status().message()));
  }
  o->model = *m;
  return 0;
}

absl::StatusOr<BenchPrompts> ResolveBenchPrompts(const BenchTarget& target,
                                                 int32_t listed_max_model_len, BenchOptions* o) {
  // Prompts are built with --tokenizer's GGUF when given, else with the
  // target's own tokenizer (/tokenize, gRPC Tokenize), else unchecked.
  BenchPrompts prompts;
  std::optional<TargetTokenizer> tok;
  if (!o->tokenizer.empty()) {
    auto local = LocalTokenizer(target, listed_max_model_len, *o);
    if (!local.ok()) return local.status();
    tok = *std::move(local);
    prompts.tokenizer_source = "local GGUF " + o->tokenizer;
  } else if (target.use_grpc()) {
    tok = ProbeGrpcTokenizer(target.grpc, o->model);
    prompts.tokenizer_source = "target gRPC Tokenize";
  } else {
    tok = ProbeTokenizer(*target.http, o->model, o->api_key);
    prompts.tokenizer_source = "target /tokenize";
  }
  if (tok) {
    auto b = PromptBuilder::FromTokenizer(tok->count, o->seed);
    if (!b.ok()) return b.status();
    prompts.builder = std::move(*b);
    prompts.count = std::move(tok->count);
    if (o->max_model_len == 0) o->max_model_len = tok->max_model_len;
  } else {
    std::fprintf(stderr,
                 "restkv bench: %s has no tokenizer endpoint; prompt lengths assume one token a "
                 "word (give --tokenizer MODEL.gguf for exact lengths)\n",
                 target.name.c_str());
    prompts.builder = PromptBuilder::Unchecked(o->seed);
    prompts.tokenizer_source = "none (one token a word assumed)";
  }
  if (o->max_model_len == 0) o->max_model_len = listed_max_model_len;
  return prompts;
}

std::optional<std::map<std::string, double>> ScrapeRestkvMetrics(const Endpoint& metrics,
                                                                 const std::string& api_key) {
  auto reply = HttpGet(metrics, "/metrics", api_key, kBenchSetupTimeout);
  if (!reply.ok() || reply->status != 200) return std::nullopt;
  auto m = ParsePrometheus(reply->body, "restkv:");
  if (m.empty()) return std::nullopt;
  return m;
}

}  // namespace restkv::cli
