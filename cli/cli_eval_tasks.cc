// `restkv eval tasks`: RULER's synthetic tasks (eval/ruler_tasks.h) per
// policy × budget × length, scored with string_match_all.
#include <cstdio>
#include <filesystem>
#include <map>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli/cli_eval_common.h"
#include "eval/eval_runner.h"
#include "eval/result_file.h"
#include "eval/ruler_tasks.h"
#include "eval/scoring.h"

namespace restkv::cli {
namespace {

struct TasksOptions {
  EvalCommonOptions common;
  std::string tasks = "all";
  std::string lengths = "4096";
  int32_t samples = 5;
  int32_t max_tokens = 0;
  std::string haystack = "licenses";
  std::string words = "/usr/share/dict/american-english";
};

int RunTasks(const TasksOptions& opt) {
  const std::string sub = "tasks";
  std::vector<std::string> tasks;
  if (opt.tasks == "all") {
    tasks = eval::RulerTaskNames();
  } else {
    tasks = absl::StrSplit(opt.tasks, ',', absl::SkipWhitespace());
  }
  for (const std::string& t : tasks) {
    const auto& names = eval::RulerTaskNames();
    if (std::find(names.begin(), names.end(), t) == names.end()) {
      return EvalFail(sub, absl::InvalidArgumentError("unknown task '" + t + "'"));
    }
  }
  auto lengths = eval::ParseIntList(opt.lengths, "--lengths");
  if (!lengths.ok()) return EvalFail(sub, lengths.status());
  if (opt.samples < 1)
    return EvalFail(sub, absl::InvalidArgumentError("--samples must be positive"));
  auto grid = EvalPolicyGrid(opt.common);
  if (!grid.ok()) return EvalFail(sub, grid.status());
  auto res = eval::LoadTaskResources(opt.haystack, opt.words);
  if (!res.ok()) return EvalFail(sub, res.status());
  auto loaded = LoadEvalModel(opt.common);
  if (!loaded.ok()) return EvalFail(sub, loaded.status());
  engine::Model& model = *loaded->model;
  for (int32_t len : *lengths) {
    if (len > model.config().context_length) {
      return EvalFail(sub, absl::InvalidArgumentError(
                               absl::StrFormat("length %d exceeds the model's context length %d",
                                               len, model.config().context_length)));
    }
  }
  if (!opt.common.plot.empty()) std::filesystem::create_directories(opt.common.plot);
  nlohmann::json config = EvalBaseConfig(opt.common, model);
  config["haystack"] = res->essay.name;
  config["max_tokens"] = opt.max_tokens;
  const std::string result_path = EvalResultPath(opt.common, sub);
  auto file = eval::ResultFile::Open(result_path, sub, config, opt.common.resume);
  if (!file.ok()) return EvalFail(sub, file.status());

  eval::EvalRunner runner(model);
  EvalProgress progress(
      static_cast<int64_t>(lengths->size() * tasks.size() * opt.samples * grid->size()),
      opt.common.quiet);
  for (int32_t len : *lengths) {
    for (const std::string& task : tasks) {
      for (int32_t i = 0; i < opt.samples; ++i) {
        std::optional<eval::TaskSample> sample;
        for (const eval::PolicySetting& s : *grid) {
          const std::string id =
              absl::StrFormat("len=%d task=%s sample=%d policy=%s", len, task, i, s.label);
          if (file->Find(id) != nullptr) {
            progress.Skip();
            continue;
          }
          progress.Start(id);
          if (!sample) {
            auto made = eval::MakeRulerSample(task, model.tokenizer(), *res, len, opt.max_tokens,
                                              opt.common.seed, i);
            if (!made.ok()) return EvalFail(sub, made.status());
            sample = std::move(*made);
          }
          const engine::KvPolicyConfig policy = s.For(static_cast<int32_t>(sample->tokens.size()));
          auto answer = runner.Generate(sample->tokens, policy, sample->max_tokens);
          if (!answer.ok()) return EvalFail(sub, answer.status());
          nlohmann::json j = {{"id", id},
                              {"length", len},
                              {"task", task},
                              {"sample", i},
                              {"policy", s.PolicyName()},
                              {"label", s.label},
                              {"budget", policy.budget},
                              {"kv_ratio", s.ratio},
                              {"prompt_tokens", answer->prompt_tokens},
                              {"answers", sample->answers},
                              {"prediction", answer->text},
                              {"score", eval::StringMatchAll(answer->text, sample->answers)},
                              {"score_part", eval::StringMatchPart(answer->text, sample->answers)},
                              {"ttft_ms", answer->ttft_ms}};
          if (absl::Status st = file->Add(j); !st.ok()) return EvalFail(sub, st);
          progress.Finish();
        }
      }
    }
  }
  progress.End();

  std::map<std::tuple<int32_t, std::string, std::string>, std::pair<double, int>> agg;
  for (const nlohmann::json& j : file->doc()["cases"]) {
    auto& a = agg[{j["length"].get<int32_t>(), j["label"].get<std::string>(),
                   j["task"].get<std::string>()}];
    a.first += j["score"].get<double>();
    a.second += 1;
  }
  for (int32_t len : *lengths) {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> head = {"policy"};
    for (const std::string& t : tasks) head.push_back(t);
    head.push_back("mean");
    rows.push_back(head);
    for (const eval::PolicySetting& s : *grid) {
      std::vector<std::string> row = {s.label};
      double sum = 0;
      int n = 0;
      for (const std::string& t : tasks) {
        auto it = agg.find({len, s.label, t});
        if (it == agg.end()) {
          row.push_back("-");
          continue;
        }
        const double v = 100.0 * it->second.first / it->second.second;
        row.push_back(absl::StrFormat("%.1f", v));
        sum += v;
        ++n;
      }
      row.push_back(n ? absl::StrFormat("%.1f", sum / n) : "-");
      rows.push_back(row);
    }
    std::printf("RULER synthetic tasks at %d tokens (string_match_all %%, %d samples each)\n%s",
                len, opt.samples, TextTable(rows).c_str());
  }
  if (!opt.common.plot.empty()) {
    if (absl::Status st = RunEvalPlot(result_path, opt.common.plot); !st.ok())
      return EvalFail(sub, st);
  }
  return 0;
}

}  // namespace

void AddEvalTasksCommand(CLI::App& eval, int* exit_code) {
  auto opt = std::make_shared<TasksOptions>();
  CLI::App* cmd = eval.add_subcommand(
      "tasks", "RULER synthetic tasks (niah variants, vt, cwe, fwe) per policy and budget");
  AddEvalCommonOptions(cmd, &opt->common, /*grid=*/true);
  cmd->add_option("--tasks", opt->tasks, "Comma-separated tasks, or all")->capture_default_str();
  cmd->add_option("--lengths", opt->lengths, "Comma-separated lengths in tokens (prompt + answer)")
      ->capture_default_str();
  cmd->add_option("--samples", opt->samples, "Samples per task and length")->capture_default_str();
  cmd->add_option("--max-tokens,-n", opt->max_tokens, "Answer tokens (0 = RULER's per task)")
      ->capture_default_str();
  cmd->add_option("--haystack", opt->haystack, "Essay haystack: licenses or a text file")
      ->capture_default_str();
  cmd->add_option("--words", opt->words, "Word list for cwe (Debian wamerican)")
      ->capture_default_str();
  cmd->callback([opt, exit_code] { *exit_code = RunTasks(*opt); });
}

}  // namespace restkv::cli
