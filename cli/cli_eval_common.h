// Shared pieces of the `restkv eval` subcommands (cli_eval*.cc): common
// flags, model loading, the progress line, text tables and the plot hook.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "cli/sparse_prefill_flag.h"
#include "engine/model/model.h"
#include "eval/policy_grid.h"
#include "kernels/cpu/cpu_backend.h"
#include "nlohmann/json.hpp"

namespace restkv::cli {

struct EvalCommonOptions {
  std::string model;
  int threads = 0;
  std::string kv_cache_dtype = "auto";  // --kv-cache-dtype (cli/kv_dtype_flag.h)
  SparsePrefillFlags sparse_prefill;    // --sparse-prefill (cli/sparse_prefill_flag.h)
  std::string policies = "full,restkv";
  std::string budgets;
  std::string kv_ratios;
  std::vector<std::string> kv_options;
  std::string result;  // JSON path
  bool resume = false;
  std::string plot;  // PNG directory
  uint64_t seed = 0;
  bool quiet = false;
};

// --model, --threads, --policies, --budgets, --kv-ratios, --kv-option, and,
// for grid commands, --result, --resume, --plot, --seed, --quiet.
void AddEvalCommonOptions(CLI::App* cmd, EvalCommonOptions* o, bool grid);

struct LoadedModel {
  std::unique_ptr<kernels::cpu::CpuBackend> backend;
  std::unique_ptr<engine::Model> model;
};
absl::StatusOr<LoadedModel> LoadEvalModel(const EvalCommonOptions& o);
absl::StatusOr<std::vector<eval::PolicySetting>> EvalPolicyGrid(const EvalCommonOptions& o);

// Prints "restkv eval SUB: message" to stderr; returns 1.
int EvalFail(const std::string& sub, const absl::Status& status);

// A one-line progress bar on stderr: [####....] k/n label, elapsed, ETA.
class EvalProgress {
 public:
  EvalProgress(int64_t total, bool quiet) : total_(total), quiet_(quiet) {}
  void Skip() {
    ++done_;
    ++skipped_;
  }  // a case found in the resumed file
  void Start(const std::string& label);
  void Finish();  // the case just started is done
  void End();     // final newline

 private:
  int64_t total_, done_ = 0, skipped_ = 0, timed_ = 0;
  bool quiet_;
  double seconds_ = 0;
  std::chrono::steady_clock::time_point t0_;
};

// Renders rows of cells as an aligned text table (first row = header).
std::string TextTable(const std::vector<std::vector<std::string>>& rows);

// Runs tools/eval-plot (matplotlib) on a result file, writing PNGs to dir.
// The interpreter is $RESTKV_PYTHON, else the checkout's .venv, else python3.
absl::Status RunEvalPlot(const std::string& result_path, const std::string& dir);

// The result path to use: --result, else DIR/<command>.json with --plot.
std::string EvalResultPath(const EvalCommonOptions& o, const std::string& command);

// Config recorded in a result file (resume must match it).
nlohmann::json EvalBaseConfig(const EvalCommonOptions& o, const engine::Model& model);

}  // namespace restkv::cli
