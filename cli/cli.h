// The `restkv` command line: one function per subcommand, each registering
// its flags on the CLI11 app and returning the process exit code when run.
#pragma once

#include <cstdio>
#include <string_view>

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

// Prints "restkv COMMAND: MESSAGE" to stderr and returns the exit code 1.
inline int CommandFailed(std::string_view command, std::string_view message) {
  std::fprintf(stderr, "restkv %.*s: %.*s\n", static_cast<int>(command.size()), command.data(),
               static_cast<int>(message.size()), message.data());
  return 1;
}

}  // namespace restkv::cli
