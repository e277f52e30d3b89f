// `restkv info --model PATH`: what a GGUF model is, without running it.
#include <cstdio>
#include <map>
#include <string>

#include "absl/strings/str_format.h"
#include "cli/cli.h"
#include "cli/default_model.h"
#include "common/byte_size.h"
#include "engine/gguf/gguf_file.h"
#include "engine/model/model_config.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer_gguf.h"
#include "kernels/ggml_type.h"
#include "kernels/kv_dtype.h"
#include "nlohmann/json.hpp"

namespace restkv::cli {
namespace {

struct InfoOptions {
  std::string model;
  bool json = false;
  bool metadata = false;
};

int RunInfo(const InfoOptions& opt) {
  auto path = ResolveModelPath(opt.model);
  if (!path.ok()) {
    std::fprintf(stderr, "restkv info: %s\n", std::string(path.status().message()).c_str());
    return 1;
  }
  auto file = engine::GgufFile::Open(*path);
  if (!file.ok()) {
    std::fprintf(stderr, "restkv info: %s\n", std::string(file.status().message()).c_str());
    return 1;
  }
  auto config = engine::ModelConfig::FromGguf(**file);
  if (!config.ok()) {
    std::fprintf(stderr, "restkv info: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  auto tok = engine::TokenizerDataFromGguf(**file);
  if (!tok.ok()) {
    std::fprintf(stderr, "restkv info: %s\n", std::string(tok.status().message()).c_str());
    return 1;
  }
  const engine::ModelConfig& c = *config;
  std::map<std::string, int> types;
  int64_t weight_bytes = 0;
  for (const auto& t : (*file)->tensors()) {
    const auto* traits = kernels::GetGgmlTypeTraits(t.type);
    ++types[traits ? std::string(traits->name) : "?"];
    weight_bytes += t.size_bytes;
  }
  auto format = engine::DetectChatFormat(tok->chat_template);
  const std::string format_name = format.ok() ? std::string(engine::ChatFormatName(*format))
                                              : (tok->chat_template.empty() ? "none" : "unknown");
  // KV bytes per token for every dtype (all layers, K and V, q8_0 scales).
  nlohmann::json kv_bytes = nlohmann::json::object();
  std::string kv_line;
  for (kernels::KvDtype d : {kernels::KvDtype::kF32, kernels::KvDtype::kF16,
                             kernels::KvDtype::kBf16, kernels::KvDtype::kQ8_0}) {
    const int64_t per_token =
        c.num_layers * kernels::KvPageLayout{c.num_kv_heads, c.head_dim, 16, d}.bytes_per_token();
    kv_bytes[std::string(kernels::KvDtypeName(d))] = per_token;
    kv_line += absl::StrFormat("%s%s %s", kv_line.empty() ? "" : ", ", FormatByteSize(per_token),
                               kernels::KvDtypeName(d));
  }

  nlohmann::json j = {
      {"path", *path},
      {"name", c.name},
      {"architecture", c.architecture},
      {"parameters", c.ParameterCount()},
      {"weight_bytes", weight_bytes},
      {"layers", c.num_layers},
      {"hidden_size", c.hidden_size},
      {"heads", c.num_heads},
      {"kv_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"ffn_size", c.ffn_size},
      {"vocab_size", c.vocab_size},
      {"context_length", c.context_length},
      {"rope_theta", c.rope_theta},
      {"rope_scaling", c.rope_scaling_type.empty() ? "none" : c.rope_scaling_type},
      {"tied_embeddings", c.tied_embeddings},
      {"tensor_types", types},
      {"tokenizer",
       {{"model", tok->model},
        {"pre", tok->pre},
        {"bos_id", tok->bos_id},
        {"eos_id", tok->eos_id},
        {"add_bos", tok->add_bos}}},
      {"chat_format", format_name},
      {"kv_bytes_per_token_f32", kv_bytes["f32"]},
      {"kv_bytes_per_token", kv_bytes},
  };
  if (opt.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model          %s\n", path->c_str());
  std::printf("name           %s\n", c.name.c_str());
  std::printf("architecture   %s, %.1fM parameters, %s of weights\n", c.architecture.c_str(),
              c.ParameterCount() / 1e6, FormatByteSize(weight_bytes).c_str());
  std::printf("layers         %d  (hidden %d, FFN %d)\n", c.num_layers, c.hidden_size, c.ffn_size);
  std::printf("attention      %d query heads, %d KV heads, head dim %d\n", c.num_heads,
              c.num_kv_heads, c.head_dim);
  std::printf("context        %d tokens; RoPE theta %.0f, scaling %s\n", c.context_length,
              c.rope_theta, c.rope_scaling_type.empty() ? "none" : c.rope_scaling_type.c_str());
  std::printf("vocabulary     %d tokens, tokenizer %s (pre %s), BOS %d, EOS %d\n", c.vocab_size,
              tok->model.c_str(), tok->pre.c_str(), tok->bos_id, tok->eos_id);
  std::printf("chat template  %s\n", format_name.c_str());
  std::string type_list;
  for (const auto& [name, n] : types) type_list += absl::StrFormat("%s×%d ", name, n);
  std::printf("tensor types   %s\n", type_list.c_str());
  std::printf("KV cache       per token: %s (--kv-cache-dtype)\n", kv_line.c_str());
  if (opt.metadata) {
    std::printf("\nmetadata:\n");
    for (const auto& kv : (*file)->metadata()) {
      std::printf("  %-40s %s\n", kv.key.c_str(), kv.value.ToString(8).c_str());
    }
  }
  return 0;
}

}  // namespace

void AddInfoCommand(CLI::App& app, int* exit_code) {
  auto opt = std::make_shared<InfoOptions>();
  CLI::App* cmd =
      app.add_subcommand("info", "Describe a GGUF model: architecture, sizes, tokenizer, template");
  cmd->add_option("--model,-m", opt->model,
                  "GGUF file (default: the model fetched by scripts/fetch-model)");
  cmd->add_flag("--json", opt->json, "Print one JSON object");
  cmd->add_flag("--metadata", opt->metadata, "Also list every metadata key");
  cmd->callback([opt, exit_code] { *exit_code = RunInfo(*opt); });
}

}  // namespace restkv::cli
