// `restkv eval keep`: for one prompt, policy and budget, the token indices
// each layer and KV head keeps — the selection the engine compacts to.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "cli/cli_eval_common.h"
#include "eval/eval_runner.h"
#include "eval/token_ids.h"

namespace restkv::cli {
namespace {

struct KeepOptions {
  EvalCommonOptions common;
  std::string prompt;
  std::string prompt_file;
  std::string prompt_tokens_file;  // ids verbatim (no tokeniser, no BOS)
  std::string output;              // "-" = stdout
};

int RunKeep(const KeepOptions& opt) {
  const std::string sub = "keep";
  const int sources = static_cast<int>(!opt.prompt.empty()) +
                      static_cast<int>(!opt.prompt_file.empty()) +
                      static_cast<int>(!opt.prompt_tokens_file.empty());
  if (sources != 1) {
    return EvalFail(
        sub,
        absl::InvalidArgumentError(
            "give exactly one of --prompt TEXT, --prompt-file FILE or --prompt-tokens-file FILE"));
  }
  std::string text = opt.prompt;
  for (const std::string* path : {&opt.prompt_file, &opt.prompt_tokens_file}) {
    if (path->empty()) continue;
    std::ifstream in(*path, std::ios::binary);
    if (!in) return EvalFail(sub, absl::NotFoundError("cannot read " + *path));
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  auto grid = EvalPolicyGrid(opt.common);
  if (!grid.ok()) return EvalFail(sub, grid.status());
  if (grid->size() != 1) {
    return EvalFail(sub,
                    absl::InvalidArgumentError(absl::StrFormat(
                        "keep takes one policy and one budget (got %d settings)", grid->size())));
  }
  auto loaded = LoadEvalModel(opt.common);
  if (!loaded.ok()) return EvalFail(sub, loaded.status());
  engine::Model& model = *loaded->model;
  std::vector<int32_t> tokens;
  if (opt.prompt_tokens_file.empty()) {
    tokens = model.tokenizer().Encode(text, true, false);
  } else {
    auto ids = eval::ParseTokenIds(text, model.config().vocab_size);
    if (!ids.ok()) return EvalFail(sub, ids.status());
    tokens = std::move(*ids);
  }
  const eval::PolicySetting& s = grid->front();
  const engine::KvPolicyConfig policy = s.For(static_cast<int32_t>(tokens.size()));
  eval::EvalRunner runner(model);
  auto sel = runner.Keep(tokens, policy);
  if (!sel.ok()) return EvalFail(sub, sel.status());
  // Per layer and KV head how many tokens it kept (they differ per head
  // under +adakv; the layer's pages hold the largest).
  std::vector<std::vector<size_t>> counts;
  for (const auto& layer : sel->kept) {
    counts.emplace_back();
    for (const auto& head : layer) counts.back().push_back(head.size());
  }
  nlohmann::json j = {
      {"model", model.path()},
      {"kv_cache_dtype", std::string(kernels::KvDtypeName(model.forward().kv_dtype()))},
      {"policy", s.PolicyName()},
      {"label", s.label},
      {"budget", policy.budget},
      {"options", engine::KvPolicyDebugString(policy)},
      {"num_tokens", sel->num_tokens},
      {"evicted", sel->evicted},
      {"num_layers", model.config().num_layers},
      {"num_kv_heads", model.config().num_kv_heads},
      {"kept_counts", counts},
      {"kept", sel->kept}};
  const std::string out = j.dump() + "\n";
  if (opt.output.empty() || opt.output == "-") {
    std::fwrite(out.data(), 1, out.size(), stdout);
  } else {
    std::ofstream f(opt.output);
    if (!(f << out))
      return EvalFail(sub, absl::PermissionDeniedError("cannot write " + opt.output));
  }
  return 0;
}

}  // namespace

void AddEvalKeepCommand(CLI::App& eval, int* exit_code) {
  auto opt = std::make_shared<KeepOptions>();
  CLI::App* cmd = eval.add_subcommand(
      "keep",
      "Dump the kept token indices per layer and KV head for one prompt, policy and budget (JSON)");
  AddEvalCommonOptions(cmd, &opt->common, /*grid=*/false);
  cmd->add_option("--prompt,-p", opt->prompt, "Prompt text (tokenised with BOS, no chat template)");
  cmd->add_option("--prompt-file", opt->prompt_file, "Read the prompt from a file (used verbatim)");
  cmd->add_option(
      "--prompt-tokens-file", opt->prompt_tokens_file,
      "Read the prompt as token ids (whitespace/comma separated or a JSON array), used verbatim: "
      "no tokeniser, no BOS added");
  cmd->add_option("--output,-o", opt->output, "Write the JSON here instead of stdout");
  cmd->callback([opt, exit_code] { *exit_code = RunKeep(*opt); });
}

}  // namespace restkv::cli
