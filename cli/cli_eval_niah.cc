// `restkv eval niah`: needle-in-a-haystack over lengths × depths × policies ×
// budgets, scored by whether the needle's number appears in the greedy answer.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "absl/strings/str_format.h"
#include "cli/cli_eval_common.h"
#include "eval/eval_runner.h"
#include "eval/haystack.h"
#include "eval/niah_case.h"
#include "eval/result_file.h"

namespace restkv::cli {
namespace {

struct NiahOptions {
  EvalCommonOptions common;
  std::string lengths = "1024,2048";
  std::string depths = "0,25,50,75,100";
  std::string haystack = "licenses";
  int32_t max_tokens = 16;
};

int RunNiah(const NiahOptions& opt) {
  const std::string sub = "niah";
  auto lengths = eval::ParseIntList(opt.lengths, "--lengths");
  if (!lengths.ok()) return EvalFail(sub, lengths.status());
  auto depths = eval::ParseDoubleList(opt.depths, "--depths");
  if (!depths.ok()) return EvalFail(sub, depths.status());
  for (double d : *depths) {
    if (!(d >= 0 && d <= 100))
      return EvalFail(sub, absl::InvalidArgumentError("--depths are percentages in [0, 100]"));
  }
  if (lengths->empty() || depths->empty())
    return EvalFail(sub, absl::InvalidArgumentError("empty --lengths or --depths"));
  auto grid = EvalPolicyGrid(opt.common);
  if (!grid.ok()) return EvalFail(sub, grid.status());
  auto haystack = eval::LoadHaystack(opt.haystack);
  if (!haystack.ok()) return EvalFail(sub, haystack.status());
  auto loaded = LoadEvalModel(opt.common);
  if (!loaded.ok()) return EvalFail(sub, loaded.status());
  engine::Model& model = *loaded->model;
  const int32_t ctx = model.config().context_length;
  for (int32_t len : *lengths) {
    if (len <= opt.max_tokens || len > ctx) {
      return EvalFail(
          sub, absl::InvalidArgumentError(absl::StrFormat(
                   "length %d must be in (%d, %d]: prompt plus --max-tokens within the context",
                   len, opt.max_tokens, ctx)));
    }
  }
  if (!opt.common.plot.empty()) std::filesystem::create_directories(opt.common.plot);
  nlohmann::json config = EvalBaseConfig(opt.common, model);
  config["haystack"] = haystack->name;
  config["max_tokens"] = opt.max_tokens;
  const std::string result_path = EvalResultPath(opt.common, sub);
  auto file = eval::ResultFile::Open(result_path, sub, config, opt.common.resume);
  if (!file.ok()) return EvalFail(sub, file.status());

  eval::EvalRunner runner(model);
  EvalProgress progress(static_cast<int64_t>(lengths->size() * depths->size() * grid->size()),
                        opt.common.quiet);
  for (int32_t len : *lengths) {
    for (double depth : *depths) {
      std::optional<eval::NiahCase> c;
      for (const eval::PolicySetting& s : *grid) {
        const std::string id = absl::StrFormat("len=%d depth=%g policy=%s", len, depth, s.label);
        if (file->Find(id) != nullptr) {
          progress.Skip();
          continue;
        }
        progress.Start(id);
        if (!c) {
          // RULER's accounting: the prompt leaves room for the answer.
          auto made = eval::MakeNiahCase(model.tokenizer(), *haystack, len - opt.max_tokens,
                                         depth / 100.0, opt.common.seed);
          if (!made.ok()) return EvalFail(sub, made.status());
          c = std::move(*made);
        }
        const engine::KvPolicyConfig policy = s.For(static_cast<int32_t>(c->tokens.size()));
        auto answer = runner.Generate(c->tokens, policy, opt.max_tokens);
        if (!answer.ok()) return EvalFail(sub, answer.status());
        nlohmann::json j = {{"id", id},
                            {"length", len},
                            {"depth", depth},
                            {"policy", s.PolicyName()},
                            {"label", s.label},
                            {"budget", policy.budget},
                            {"kv_ratio", s.ratio},
                            {"prompt_tokens", answer->prompt_tokens},
                            {"kv_tokens_kept", answer->kv_tokens_kept},
                            {"key", c->key},
                            {"value", c->value},
                            {"answer", answer->text},
                            {"score", eval::ScoreNiah(*c, answer->text)},
                            {"ttft_ms", answer->ttft_ms}};
        if (absl::Status st = file->Add(j); !st.ok()) return EvalFail(sub, st);
        progress.Finish();
      }
    }
  }
  progress.End();

  // Table: policy × length, mean score over depths (x100), and the mean.
  std::map<std::string, std::map<int32_t, std::pair<double, int>>> agg;
  for (const nlohmann::json& j : file->doc()["cases"]) {
    auto& cell = agg[j["label"].get<std::string>()][j["length"].get<int32_t>()];
    cell.first += j["score"].get<double>();
    cell.second += 1;
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head = {"policy"};
  for (int32_t len : *lengths) head.push_back(absl::StrFormat("%d", len));
  head.push_back("mean");
  rows.push_back(head);
  for (const eval::PolicySetting& s : *grid) {
    std::vector<std::string> row = {s.label};
    double sum = 0;
    int n = 0;
    for (int32_t len : *lengths) {
      const auto& cell = agg[s.label][len];
      row.push_back(cell.second ? absl::StrFormat("%.1f", 100.0 * cell.first / cell.second) : "-");
      sum += cell.first;
      n += cell.second;
    }
    row.push_back(n ? absl::StrFormat("%.1f", 100.0 * sum / n) : "-");
    rows.push_back(row);
  }
  std::printf("NIAH accuracy (%%, mean over %zu depths), haystack %s\n%s", depths->size(),
              haystack->name.c_str(), TextTable(rows).c_str());
  if (!result_path.empty() && opt.common.result.empty())
    std::printf("cases: %s\n", result_path.c_str());
  if (!opt.common.plot.empty()) {
    if (absl::Status st = RunEvalPlot(result_path, opt.common.plot); !st.ok())
      return EvalFail(sub, st);
  }
  return 0;
}

}  // namespace

void AddEvalNiahCommand(CLI::App& eval, int* exit_code) {
  auto opt = std::make_shared<NiahOptions>();
  CLI::App* cmd =
      eval.add_subcommand("niah", "Needle in a haystack: lengths x depths x policies x budgets");
  AddEvalCommonOptions(cmd, &opt->common, /*grid=*/true);
  cmd->add_option("--lengths", opt->lengths,
                  "Comma-separated context lengths in tokens (prompt + answer)")
      ->capture_default_str();
  cmd->add_option("--depths", opt->depths, "Comma-separated needle depths in percent")
      ->capture_default_str();
  cmd->add_option("--haystack", opt->haystack,
                  "licenses (Debian's /usr/share/common-licenses), noise (RULER's), or a text file")
      ->capture_default_str();
  cmd->add_option("--max-tokens,-n", opt->max_tokens, "Answer tokens to generate")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->callback([opt, exit_code] { *exit_code = RunNiah(*opt); });
}

}  // namespace restkv::cli
