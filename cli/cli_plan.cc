// `restkv plan`: KV memory arithmetic for one context length under an
// eviction policy — pages per request at the prefill peak and after prefill,
// and how many such requests fit at once, with `full` and with the policy.
// The numbers come from engine/kv/page_math.h, the code admission uses.
#include <cstdio>
#include <map>
#include <string>

#include "absl/strings/str_format.h"
#include "cli/cli.h"
#include "cli/kv_dtype_flag.h"
#include "cli/kv_policy_flags.h"
#include "common/byte_size.h"
#include "engine/eviction/policy_config.h"
#include "engine/gguf/gguf_file.h"
#include "engine/kv/page_math.h"
#include "engine/model/model_config.h"
#include "nlohmann/json.hpp"

namespace restkv::cli {
namespace {

struct Shape {
  std::string name;
  int32_t layers, kv_heads, head_dim;
};

// Published shapes of common checkpoints (no weights needed to plan).
const std::map<std::string, Shape>& NamedShapes() {
  static const auto* shapes = new std::map<std::string, Shape>{
      {"smollm2-135m", {"SmolLM2-135M", 30, 3, 64}}, {"llama3-8b", {"Llama-3-8B", 32, 8, 128}},
      {"llama3-70b", {"Llama-3-70B", 80, 8, 128}},   {"mistral-7b", {"Mistral-7B", 32, 8, 128}},
      {"qwen2.5-7b", {"Qwen2.5-7B", 28, 4, 128}},    {"llama2-7b", {"Llama-2-7B", 32, 32, 128}},
  };
  return *shapes;
}

struct PlanOptions {
  std::string model = "llama3-8b";
  std::string kv_cache_memory = "64GiB";
  int32_t context = 131072;
  int32_t gen_tokens = 0;
  KvPolicyFlags kv{"restkv", 2048, {}};
  int32_t block_size = 16;
  std::string kv_dtype = "auto";  // --kv-cache-dtype (cli/kv_dtype_flag.h)
  int32_t shared_prefix = 0;      // --shared-prefix: tokens every prompt starts with
  bool json = false;
};

int RunPlan(const PlanOptions& opt) {
  Shape shape;
  if (auto it = NamedShapes().find(opt.model); it != NamedShapes().end()) {
    shape = it->second;
  } else {
    auto file = engine::GgufFile::Open(opt.model);
    if (!file.ok()) {
      std::string names;
      for (const auto& [k, v] : NamedShapes()) names += " " + k;
      return CommandFailed(
          "plan", std::string(file.status().message()) + " (or name a shape:" + names + ")");
    }
    auto c = engine::ModelConfig::FromGguf(**file);
    if (!c.ok()) return CommandFailed("plan", std::string(c.status().message()));
    shape = {c->name, c->num_layers, c->num_kv_heads, c->head_dim};
  }
  auto bytes = ParseByteSize(opt.kv_cache_memory);
  if (!bytes.ok())
    return CommandFailed("plan", "--kv-cache-memory: " + std::string(bytes.status().message()));
  // Plans are for the serving device, so auto means the CUDA default (bf16;
  // f16, auto on the CPU, has the same size).
  auto dtype = ResolveKvDtype(opt.kv_dtype, "cuda");
  if (!dtype.ok()) return CommandFailed("plan", std::string(dtype.status().message()));
  if (opt.context < 1 || opt.block_size < 1 || opt.gen_tokens < 0 || opt.shared_prefix < 0) {
    return CommandFailed(
        "plan",
        "--context and --block-size must be positive, --gen-tokens and --shared-prefix "
        "non-negative");
  }
  auto policy_or = BuildKvPolicy(opt.kv);
  if (!policy_or.ok()) return CommandFailed("plan", std::string(policy_or.status().message()));
  const engine::KvPolicyConfig& policy = *policy_or;

  auto page_bytes_of = [&](kernels::KvDtype d) {
    return kernels::KvPageLayout{shape.kv_heads, shape.head_dim, opt.block_size, d}.page_bytes();
  };
  const int64_t page_bytes = page_bytes_of(*dtype);
  const int64_t total_pages = *bytes / page_bytes;
  const engine::KvPageMath math{shape.layers, opt.block_size};
  const engine::KvPolicyConfig full;
  auto describe = [&](const engine::KvPolicyConfig& p) {
    return nlohmann::json{
        {"policy", std::string(engine::KvPolicyName(p.kind))},
        {"budget", p.kind == engine::KvPolicyKind::kFull ? 0 : p.budget},
        {"pages_prefill_peak", math.PrefillPeakPages(p, opt.context)},
        {"pages_after_prefill", math.PagesAfterPrefill(p, opt.context)},
        {"pages_after_decode", math.PagesAfterDecode(p, opt.context, opt.gen_tokens)},
        {"bytes_after_prefill", math.PagesAfterPrefill(p, opt.context) * page_bytes},
        {"fit", math.MaxConcurrent(p, opt.context, opt.gen_tokens, total_pages)},
        // With the prefix cache holding the shared prefix once.
        {"pages_shared_prefix", math.SharedPrefixPages(p, opt.context, opt.shared_prefix)},
        {"fit_shared_prefix",
         math.MaxConcurrent(p, opt.context, opt.gen_tokens, total_pages, opt.shared_prefix)},
    };
  };
  const nlohmann::json f = describe(full), q = describe(policy);
  // The same plan for every KV dtype: requests that fit, full and with the
  // policy (the bytes per kept token multiply what eviction gives).
  nlohmann::json by_dtype = nlohmann::json::object();
  for (kernels::KvDtype d : {kernels::KvDtype::kF32, kernels::KvDtype::kF16,
                             kernels::KvDtype::kBf16, kernels::KvDtype::kQ8_0}) {
    const int64_t pages = *bytes / page_bytes_of(d);
    by_dtype[std::string(kernels::KvDtypeName(d))] = {
        {"page_bytes", page_bytes_of(d)},
        {"total_pages", pages},
        {"fit_full", math.MaxConcurrent(full, opt.context, opt.gen_tokens, pages)},
        {"fit_policy", math.MaxConcurrent(policy, opt.context, opt.gen_tokens, pages)}};
  }
  nlohmann::json j = {{"model", shape.name},
                      {"layers", shape.layers},
                      {"kv_heads", shape.kv_heads},
                      {"head_dim", shape.head_dim},
                      {"context", opt.context},
                      {"gen_tokens", opt.gen_tokens},
                      {"kv_dtype", std::string(kernels::KvDtypeName(*dtype))},
                      {"block_size", opt.block_size},
                      {"page_bytes", page_bytes},
                      {"kv_cache_bytes", *bytes},
                      {"total_pages", total_pages},
                      {"full", f},
                      {"with_policy", q},
                      {"fit_full", f["fit"]},
                      {"fit_policy", q["fit"]},
                      {"by_dtype", by_dtype}};
  if (opt.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("%s: %d layers, %d KV heads x %d; %s %s KV cache, %s pages of %s (block %d)\n",
              shape.name.c_str(), shape.layers, shape.kv_heads, shape.head_dim,
              FormatByteSize(*bytes).c_str(), std::string(kernels::KvDtypeName(*dtype)).c_str(),
              std::to_string(total_pages).c_str(), FormatByteSize(page_bytes).c_str(),
              opt.block_size);
  std::printf("context %d tokens (+%d generated)\n\n", opt.context, opt.gen_tokens);
  std::printf("%-22s %14s %14s %14s %10s %12s\n", "policy", "prefill peak", "after prefill",
              "memory", "fit", "fit shared");
  for (const nlohmann::json* row : {&f, &q}) {
    const std::string name = absl::StrFormat(
        "%s%s", (*row)["policy"].get<std::string>(),
        (*row)["budget"].get<int>() > 0 ? absl::StrFormat(" @%d", (*row)["budget"].get<int>())
                                        : "");
    std::printf("%-22s %14lld %14lld %14s %10lld %12lld\n", name.c_str(),
                (*row)["pages_prefill_peak"].get<long long>(),
                (*row)["pages_after_prefill"].get<long long>(),
                FormatByteSize((*row)["bytes_after_prefill"].get<int64_t>()).c_str(),
                (*row)["fit"].get<long long>(), (*row)["fit_shared_prefix"].get<long long>());
  }
  std::printf("\n%-8s %12s %10s %10s\n", "kv dtype", "page", "fit full", "fit policy");
  for (const auto& [name, row] : by_dtype.items()) {
    std::printf("%-8s %12s %10lld %10lld\n", name.c_str(),
                FormatByteSize(row["page_bytes"].get<int64_t>()).c_str(),
                row["fit_full"].get<long long>(), row["fit_policy"].get<long long>());
  }
  return 0;
}

}  // namespace

void AddPlanCommand(CLI::App& app, int* exit_code) {
  auto opt = std::make_shared<PlanOptions>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "KV cache arithmetic: pages per request and how many fit, full vs a policy");
  std::string names;
  for (const auto& [k, v] : NamedShapes()) names += (names.empty() ? "" : ", ") + k;
  cmd->add_option("--model,-m", opt->model, "GGUF file or a named shape: " + names)
      ->capture_default_str();
  cmd->add_option("--kv-cache-memory", opt->kv_cache_memory, "KV pool size")->capture_default_str();
  cmd->add_option("--context", opt->context, "Prompt tokens per request")->capture_default_str();
  cmd->add_option("--gen-tokens", opt->gen_tokens, "Generated tokens per request")
      ->capture_default_str();
  AddKvPolicyFlags(cmd, &opt->kv);
  cmd->add_option("--block-size", opt->block_size, "Token slots per page")->capture_default_str();
  cmd->add_option("--kv-cache-dtype,--kv-dtype", opt->kv_dtype,
                  "KV cache element type: auto (bf16, the CUDA default), f32, f16, bf16, q8_0")
      ->capture_default_str();
  cmd->add_option("--shared-prefix", opt->shared_prefix,
                  "Prompt tokens every request shares (a system prompt): the prefix cache holds "
                  "them once for requests whose policy does not evict (column 'fit shared')")
      ->capture_default_str();
  cmd->add_flag("--json", opt->json, "Print JSON (fit_full, fit_policy, ...)");
  cmd->callback([opt, exit_code] { *exit_code = RunPlan(*opt); });
}

}  // namespace restkv::cli
