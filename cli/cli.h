// The `restkv` command line: one function per subcommand, each registering
// its flags on the CLI11 app and returning the process exit code when run.
#pragma once

#include "CLI/CLI.hpp"

namespace restkv::cli {

// Adds `restkv info`; the callback sets *exit_code.
void AddInfoCommand(CLI::App& app, int* exit_code);
// Adds `restkv generate`.
void AddGenerateCommand(CLI::App& app, int* exit_code);
// Adds `restkv plan`.
void AddPlanCommand(CLI::App& app, int* exit_code);
// Adds `restkv serve` (cli_serve.cc).
void AddServeCommand(CLI::App& app, int* exit_code);
// Adds `restkv bench` (cli/cli_bench.cc; library restkv_bench).
void AddBenchCommand(CLI::App& app, int* exit_code);
// Adds `restkv eval` (cli_eval*.cc).
void AddEvalCommand(CLI::App& app, int* exit_code);

}  // namespace restkv::cli
