#include "cli/cli_eval_common.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/default_model.h"
#include "cli/kv_dtype_flag.h"
#include "cli/sparse_prefill_flag.h"
#include "common/thread_pool.h"

namespace restkv::cli {

void AddEvalCommonOptions(CLI::App* cmd, EvalCommonOptions* o, bool grid) {
  cmd->add_option("--model,-m", o->model,
                  "GGUF file (default: the model fetched by scripts/fetch-model)");
  cmd->add_option("--threads", o->threads, "CPU threads (default: all available cores)");
  AddKvDtypeFlag(cmd, &o->kv_cache_dtype);
  AddSparsePrefillFlags(cmd, &o->sparse_prefill);
  cmd->add_option("--policies", o->policies,
                  "Comma-separated KV policies: full, streamingllm, h2o, tova, snapkv, pyramidkv, "
                  "restkv, lacache")
      ->capture_default_str();
  cmd->add_option("--budgets", o->budgets,
                  "Comma-separated budgets (tokens kept per layer and KV head)");
  cmd->add_option("--kv-ratios", o->kv_ratios,
                  "Comma-separated budgets as fractions of the prompt, e.g. 0.1,0.5");
  cmd->add_option(
      "--kv-option", o->kv_options,
      "Policy knobs key=value[,...] for every policy, or policy:key=value[,...] for one "
      "(e.g. restkv:kernel_size=21); repeatable");
  if (!grid) return;
  cmd->add_option("--result", o->result,
                  "Write every case to this JSON file (rewritten after each case)");
  cmd->add_flag("--resume", o->resume,
                "Continue the grid recorded in --result, skipping finished cases");
  cmd->add_option("--plot", o->plot,
                  "Write PNG plots to this directory (tools/eval-plot, matplotlib)");
  cmd->add_option("--seed", o->seed, "Seed for case generation")->capture_default_str();
  cmd->add_flag("--quiet,-q", o->quiet, "No progress bar");
}

absl::StatusOr<LoadedModel> LoadEvalModel(const EvalCommonOptions& o) {
  auto path = ResolveModelPath(o.model);
  if (!path.ok()) return path.status();
  LoadedModel m;
  m.backend =
      std::make_unique<kernels::cpu::CpuBackend>(o.threads > 0 ? o.threads : DefaultThreadCount());
  engine::ModelOptions options;
  auto dtype = ResolveKvDtype(o.kv_cache_dtype, m.backend->name());
  if (!dtype.ok()) return dtype.status();
  options.kv_dtype = *dtype;
  options.sparse_prefill = ToSparsePrefill(o.sparse_prefill);
  auto model = engine::Model::Load(*path, *m.backend, options);
  if (!model.ok()) return model.status();
  m.model = std::move(*model);
  return m;
}

absl::StatusOr<std::vector<eval::PolicySetting>> EvalPolicyGrid(const EvalCommonOptions& o) {
  auto budgets = eval::ParseIntList(o.budgets, "--budgets");
  if (!budgets.ok()) return budgets.status();
  auto ratios = eval::ParseDoubleList(o.kv_ratios, "--kv-ratios");
  if (!ratios.ok()) return ratios.status();
  std::vector<std::string> names = absl::StrSplit(o.policies, ',', absl::SkipWhitespace());
  return eval::BuildPolicyGrid(names, *budgets, *ratios, o.kv_options);
}

int EvalFail(const std::string& sub, const absl::Status& status) {
  std::fprintf(stderr, "restkv eval %s: %s\n", sub.c_str(), std::string(status.message()).c_str());
  return 1;
}

void EvalProgress::Start(const std::string& label) {
  t0_ = std::chrono::steady_clock::now();
  if (quiet_) return;
  const int width = 24;
  const int filled = total_ > 0 ? static_cast<int>(width * done_ / total_) : width;
  std::string eta = "--";
  if (timed_ > 0) {
    const double per = seconds_ / static_cast<double>(timed_);
    eta = absl::StrFormat("%.0fs", per * static_cast<double>(total_ - done_));
  }
  std::fprintf(stderr, "\r\033[K[%s%s] %lld/%lld %s (elapsed %.0fs, eta %s)",
               std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
               static_cast<long long>(done_), static_cast<long long>(total_), label.c_str(),
               seconds_, eta.c_str());
  std::fflush(stderr);
}

void EvalProgress::Finish() {
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  ++done_;
  ++timed_;
}

void EvalProgress::End() {
  if (quiet_) return;
  std::fprintf(stderr, "\r\033[K%lld cases (%lld resumed) in %.0fs\n",
               static_cast<long long>(done_), static_cast<long long>(skipped_), seconds_);
}

std::string TextTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (const auto& r : rows) {
    if (w.size() < r.size()) w.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  std::string out;
  for (size_t k = 0; k < rows.size(); ++k) {
    for (size_t i = 0; i < rows[k].size(); ++i) {
      const std::string& cell = rows[k][i];
      const std::string pad(w[i] - cell.size(), ' ');
      out += i == 0 ? cell + pad : "  " + pad + cell;
    }
    out += "\n";
    if (k == 0) {
      size_t total = 0;
      for (size_t i = 0; i < w.size(); ++i) total += w[i] + (i ? 2 : 0);
      out += std::string(total, '-') + "\n";
    }
  }
  return out;
}

absl::Status RunEvalPlot(const std::string& result_path, const std::string& dir) {
  // The binary lives in <checkout>/build; the script and venv beside it.
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::filesystem::path root =
      ec ? std::filesystem::current_path() : exe.parent_path().parent_path();
  std::filesystem::path script = root / "tools" / "eval-plot";
  if (const char* s = std::getenv("RESTKV_EVAL_PLOT")) script = s;
  if (!std::filesystem::exists(script)) {
    return absl::NotFoundError(
        absl::StrFormat("plot script %s not found (set RESTKV_EVAL_PLOT)", script.string()));
  }
  std::string python = "python3";
  if (const char* p = std::getenv("RESTKV_PYTHON")) {
    python = p;
  } else if (std::filesystem::exists(root / ".venv" / "bin" / "python")) {
    python = (root / ".venv" / "bin" / "python").string();
  }
  auto quote = [](const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  const std::string cmd = absl::StrFormat("%s %s %s --out %s", quote(python),
                                          quote(script.string()), quote(result_path), quote(dir));
  const int rc = std::system(cmd.c_str());
  if (rc != 0)
    return absl::InternalError(absl::StrFormat("plotting failed (exit %d): %s", rc, cmd));
  return absl::OkStatus();
}

std::string EvalResultPath(const EvalCommonOptions& o, const std::string& command) {
  if (!o.result.empty()) return o.result;
  if (!o.plot.empty()) return (std::filesystem::path(o.plot) / (command + ".json")).string();
  return "";
}

nlohmann::json EvalBaseConfig(const EvalCommonOptions& o, const engine::Model& model) {
  return {{"model", std::filesystem::path(model.path()).filename().string()},
          {"kv_cache_dtype", std::string(kernels::KvDtypeName(model.forward().kv_dtype()))},
          {"kv_options", o.kv_options},
          {"seed", o.seed}};
}

}  // namespace restkv::cli
