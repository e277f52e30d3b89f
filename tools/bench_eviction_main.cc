// bench_eviction: what eviction during prefill buys and costs, measured in
// one run against the full cache.
//
//   --mode long      synthetic Llama-shaped model (weights drawn from a seed),
//                    prompt of --tokens (default 32768): pool high-water mark,
//                    pages after prefill, requests that fit in a pool sized for
//                    two full-cache requests, prefill time and decode ms/token,
//                    for full and each --policies entry.
//   --mode overhead  a real model (--model, default model if omitted), prompt
//                    of --tokens (default 8192): prefill time per policy, as a
//                    ratio to full (the scoring overhead).
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_split.h"
#include "cli/default_model.h"
#include "common/thread_pool.h"
#include "engine/gguf/gguf_file.h"
#include "engine/kv/block_pool.h"
#include "engine/kv/kv_layer_hook.h"
#include "engine/kv/page_math.h"
#include "engine/model/llama_model.h"
#include "engine/model/model.h"
#include "engine/model/synthetic_model.h"
#include "kernels/cpu/cpu_backend.h"
#include "nlohmann/json.hpp"

namespace restkv {
namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Run {
  double prefill_s = 0, decode_ms_per_token = 0;
  int32_t high_water = 0, pages_after = 0;
};

Run Measure(engine::LlamaModel& model, engine::LayerEvictor& evictor, engine::BlockPool& pool,
            const std::vector<int32_t>& prompt, const engine::KvPolicyConfig& policy,
            int decode_tokens) {
  const int32_t L = model.config().num_layers;
  Run run;
  engine::SequenceKv kv(pool, L);
  engine::EvictionReport report;
  pool.ResetHighWater();
  engine::SequenceInput in{prompt, 0, kv.cached_len(), kv.page_ptrs(), engine::LogitsMode::kLast};
  engine::KvLayerHook hook(kv, policy, evictor, &report);
  in.hook = &hook;
  std::vector<float> logits;
  auto t0 = std::chrono::steady_clock::now();
  if (!model.Forward({&in, 1}, &logits).ok()) std::abort();
  run.prefill_s = Seconds(t0);
  run.high_water = pool.high_water();
  run.pages_after = pool.num_used();
  int32_t pos = static_cast<int32_t>(prompt.size());
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < decode_tokens; ++i) {
    const int32_t next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    engine::SequenceInput step{absl::MakeConstSpan(&next, 1), pos++, kv.cached_len(),
                               kv.page_ptrs(), engine::LogitsMode::kLast};
    engine::KvLayerHook step_hook(kv);
    step.hook = &step_hook;
    if (!model.Forward({&step, 1}, &logits).ok()) std::abort();
  }
  run.decode_ms_per_token = decode_tokens > 0 ? Seconds(t0) * 1000 / decode_tokens : 0;
  return run;
}

std::vector<engine::KvPolicyConfig> ParsePolicies(const std::string& spec) {
  std::vector<engine::KvPolicyConfig> out;
  for (absl::string_view item : absl::StrSplit(spec, ',')) {
    std::vector<std::string> parts = absl::StrSplit(item, '@');
    engine::KvPolicyConfig p;
    auto kind = engine::ParseKvPolicy(parts[0]);
    if (!kind.ok()) {
      std::fprintf(stderr, "%s\n", std::string(kind.status().message()).c_str());
      std::exit(2);
    }
    p.kind = *kind;
    p.budget = parts.size() > 1 ? std::stoi(parts[1]) : 2048;
    out.push_back(p);
  }
  return out;
}

int Main(int argc, char** argv) {
  CLI::App app{"restkv eviction benchmark"};
  std::string mode = "long", model_flag, policies = "restkv@2048,snapkv@2048";
  int tokens = 0, decode_tokens = 32, threads = 0, layers = 4;
  app.add_option("--mode", mode)->check(CLI::IsMember({"long", "overhead"}));
  app.add_option("--model", model_flag);
  app.add_option("--tokens", tokens);
  app.add_option("--decode-tokens", decode_tokens);
  app.add_option("--policies", policies, "comma list of policy@budget");
  app.add_option("--layers", layers, "synthetic model layers (long mode)");
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  if (threads <= 0) threads = DefaultThreadCount();
  kernels::cpu::CpuBackend backend(threads);
  std::string bytes;
  std::unique_ptr<engine::GgufFile> file;
  engine::ModelConfig config;
  engine::ModelWeights weights;
  std::unique_ptr<engine::Model> real;
  engine::LlamaModel* model = nullptr;
  const engine::ModelWeights* weights_used = nullptr;
  std::unique_ptr<engine::LlamaModel> synthetic;
  std::vector<int32_t> prompt;
  if (mode == "long") {
    if (tokens == 0) tokens = 32768;
    engine::SyntheticModelSpec spec;
    spec.num_layers = layers;
    spec.hidden_size = 256;
    spec.num_heads = 4;
    spec.num_kv_heads = 2;
    spec.ffn_size = 512;
    spec.context_length = 262144;
    spec.weight_type = kernels::GgmlType::kQ8_0;
    bytes = engine::BuildSyntheticGguf(spec);
    file = *engine::GgufFile::FromBuffer(bytes, "synthetic");
    config = *engine::ModelConfig::FromGguf(*file);
    weights = *engine::ModelWeights::Load(*file, config, backend);
    synthetic = std::make_unique<engine::LlamaModel>(config, weights, backend, 16);
    model = synthetic.get();
    weights_used = &weights;
    for (int i = 0; i < tokens; ++i) prompt.push_back((i * 7919 + 13) % 256);
  } else {
    if (tokens == 0) tokens = 8192;
    auto path = cli::ResolveModelPath(model_flag);
    if (!path.ok()) return 1;
    real = *engine::Model::Load(*path, backend);
    config = real->config();
    weights_used = &real->weights();
    model = &real->forward();
    const std::vector<int32_t> text = real->tokenizer().Encode(
        "The history of the harbour town is long. Ships came and went, and the market grew "
        "around the old stone bridge where the river meets the sea. ",
        false, false);
    while (static_cast<int>(prompt.size()) < tokens)
      prompt.insert(prompt.end(), text.begin(), text.end());
    prompt.resize(tokens);
  }
  const engine::KvPageMath math{config.num_layers, 16};
  const engine::KvPolicyConfig full;
  const int64_t full_peak = math.PrefillPeakPages(full, tokens);
  // Room for one full-cache prefill beside anything else.
  auto pool = *engine::BlockPool::Create(backend, {config.num_kv_heads, config.head_dim, 16},
                                         static_cast<int32_t>(full_peak + config.num_layers * 8));
  // The pool the fit counts refer to: two full-cache requests' worth.
  const int64_t two_full_pages = 2 * math.PagesAfterDecode(full, tokens, decode_tokens);
  std::vector<engine::KvPolicyConfig> all = {full};
  for (const auto& p : ParsePolicies(policies)) all.push_back(p);
  double full_prefill = 0, full_decode = 0;
  engine::LayerEvictor evictor(config, *weights_used, backend);
  for (const auto& p : all) {
    const Run r = Measure(*model, evictor, *pool, prompt, p, mode == "long" ? decode_tokens : 0);
    if (p.kind == engine::KvPolicyKind::kFull) {
      full_prefill = r.prefill_s;
      full_decode = r.decode_ms_per_token;
    }
    nlohmann::json j = {{"mode", mode},
                        {"policy", std::string(engine::KvPolicyName(p.kind))},
                        {"budget", p.budget},
                        {"tokens", tokens},
                        {"layers", config.num_layers},
                        {"prefill_s", r.prefill_s},
                        {"prefill_vs_full", r.prefill_s / full_prefill},
                        {"pool_high_water_pages", r.high_water},
                        {"predicted_peak_pages", math.PrefillPeakPages(p, tokens)},
                        {"pages_after_prefill", r.pages_after},
                        {"fit_in_two_full_requests_pool",
                         math.MaxConcurrent(p, tokens, decode_tokens, two_full_pages)}};
    if (mode == "long") {
      j["decode_ms_per_token"] = r.decode_ms_per_token;
      j["decode_speedup_vs_full"] = full_decode / r.decode_ms_per_token;
    }
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace restkv

int main(int argc, char** argv) { return restkv::Main(argc, argv); }
