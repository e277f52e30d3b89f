// `restkv eval ppl`: perplexity of a text's continuation after its context
// was prefilled and compressed by a policy (post-fill setting; see
// eval/eval_runner.h). The full cache is the reference.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/cli_eval_common.h"
#include "eval/eval_runner.h"
#include "eval/haystack.h"
#include "eval/result_file.h"

namespace restkv::cli {
namespace {

struct PplOptions {
  EvalCommonOptions common;
  std::string text = "licenses";
  int32_t context = 2048;
  int32_t score = 256;
  int32_t segments = 1;
};

int RunPpl(const PplOptions& opt) {
  const std::string sub = "ppl";
  auto grid = EvalPolicyGrid(opt.common);
  if (!grid.ok()) return EvalFail(sub, grid.status());
  if (opt.context < 1 || opt.score < 1 || opt.segments < 1) {
    return EvalFail(
        sub, absl::InvalidArgumentError("--context, --score and --segments must be positive"));
  }
  auto source = eval::LoadHaystack(opt.text);
  if (!source.ok()) return EvalFail(sub, source.status());
  auto loaded = LoadEvalModel(opt.common);
  if (!loaded.ok()) return EvalFail(sub, loaded.status());
  engine::Model& model = *loaded->model;
  const int32_t window = opt.context + opt.score;
  if (window > model.config().context_length) {
    return EvalFail(sub, absl::InvalidArgumentError(absl::StrFormat(
                             "--context + --score = %d exceeds the model's context length %d",
                             window, model.config().context_length)));
  }
  // The text as one token stream; segment k is tokens [k*window, (k+1)*window)
  // with a BOS in front of each.
  const std::vector<int32_t> all =
      model.tokenizer().Encode(absl::StrJoin(source->sentences, " "), /*add_special=*/false, false);
  const int32_t bos = model.tokenizer().bos_id();
  const int32_t stride = window - (bos >= 0 ? 1 : 0);  // text tokens per segment
  const int64_t need = static_cast<int64_t>(opt.segments) * stride;
  if (static_cast<int64_t>(all.size()) < need) {
    return EvalFail(sub, absl::InvalidArgumentError(
                             absl::StrFormat("the text has %d tokens; %d segments of %d need %d",
                                             all.size(), opt.segments, window, need)));
  }
  if (!opt.common.plot.empty()) std::filesystem::create_directories(opt.common.plot);
  nlohmann::json config = EvalBaseConfig(opt.common, model);
  config["text"] = source->name;
  config["context"] = opt.context;
  config["score"] = opt.score;
  const std::string result_path = EvalResultPath(opt.common, sub);
  auto file = eval::ResultFile::Open(result_path, sub, config, opt.common.resume);
  if (!file.ok()) return EvalFail(sub, file.status());

  eval::EvalRunner runner(model);
  const int32_t L = model.config().num_layers;
  EvalProgress progress(static_cast<int64_t>(opt.segments) * grid->size(), opt.common.quiet);
  for (int32_t k = 0; k < opt.segments; ++k) {
    std::vector<int32_t> tokens;
    tokens.reserve(window);
    if (bos >= 0) tokens.push_back(bos);
    for (int64_t i = static_cast<int64_t>(k) * stride; static_cast<int32_t>(tokens.size()) < window;
         ++i) {
      tokens.push_back(all[i]);
    }
    for (const eval::PolicySetting& s : *grid) {
      const std::string id = absl::StrFormat("segment=%d policy=%s", k, s.label);
      if (file->Find(id) != nullptr) {
        progress.Skip();
        continue;
      }
      progress.Start(id);
      const engine::KvPolicyConfig policy = s.For(opt.context);
      auto r = runner.Perplexity(tokens, opt.context, policy);
      if (!r.ok()) return EvalFail(sub, r.status());
      nlohmann::json j = {{"id", id},
                          {"segment", k},
                          {"policy", s.PolicyName()},
                          {"label", s.label},
                          {"budget", policy.budget},
                          {"kv_ratio", s.ratio},
                          {"context_tokens", r->context_tokens},
                          {"scored_tokens", r->scored_tokens},
                          {"kept_fraction", static_cast<double>(r->kv_slots_after_prefill) /
                                                (static_cast<double>(L) * r->context_tokens)},
                          {"nll_sum", r->nll_sum},
                          {"perplexity", r->perplexity}};
      if (absl::Status st = file->Add(j); !st.ok()) return EvalFail(sub, st);
      progress.Finish();
    }
  }
  progress.End();

  std::map<std::string, std::pair<double, double>> nll;  // label -> (sum nll, tokens)
  std::map<std::string, double> kept;
  for (const nlohmann::json& j : file->doc()["cases"]) {
    auto& a = nll[j["label"].get<std::string>()];
    a.first += j["nll_sum"].get<double>();
    a.second += j["scored_tokens"].get<double>();
    kept[j["label"].get<std::string>()] = j["kept_fraction"].get<double>();
  }
  const bool have_full = nll.count("full") > 0;
  const double full_ppl = have_full ? std::exp(nll["full"].first / nll["full"].second) : 0;
  std::vector<std::vector<std::string>> rows = {{"policy", "kept %", "perplexity", "vs full"}};
  for (const eval::PolicySetting& s : *grid) {
    if (!nll.count(s.label)) continue;
    const double p = std::exp(nll[s.label].first / nll[s.label].second);
    rows.push_back({s.label, absl::StrFormat("%.1f", 100 * kept[s.label]),
                    absl::StrFormat("%.3f", p),
                    have_full ? absl::StrFormat("%.3fx", p / full_ppl) : "-"});
  }
  std::printf("Post-fill perplexity: %d context tokens, %d scored, %d segment(s) of %s\n%s",
              opt.context, opt.score, opt.segments, source->name.c_str(), TextTable(rows).c_str());
  if (!opt.common.plot.empty()) {
    if (absl::Status st = RunEvalPlot(result_path, opt.common.plot); !st.ok())
      return EvalFail(sub, st);
  }
  return 0;
}

}  // namespace

void AddEvalPplCommand(CLI::App& eval, int* exit_code) {
  auto opt = std::make_shared<PplOptions>();
  CLI::App* cmd = eval.add_subcommand(
      "ppl",
      "Perplexity of a continuation after the context is prefilled and compressed (post-fill)");
  AddEvalCommonOptions(cmd, &opt->common, /*grid=*/true);
  opt->common.kv_ratios = "0.1,0.2,0.5";
  opt->common.policies = "full,streamingllm,h2o,tova,snapkv,pyramidkv,restkv";
  cmd->get_option("--kv-ratios")->capture_default_str();
  cmd->get_option("--policies")->capture_default_str();
  cmd->add_option("--text", opt->text,
                  "licenses (Debian's /usr/share/common-licenses) or a text file")
      ->capture_default_str();
  cmd->add_option("--context", opt->context, "Context tokens prefilled and compressed")
      ->capture_default_str();
  cmd->add_option("--score", opt->score, "Following tokens scored teacher-forced")
      ->capture_default_str();
  cmd->add_option("--segments", opt->segments, "Consecutive windows of the text to average over")
      ->capture_default_str();
  cmd->callback([opt, exit_code] { *exit_code = RunPpl(*opt); });
}

}  // namespace restkv::cli
