// restkv-bench: `restkv bench` as a binary of its own (no engine linked in),
// for machines that only drive load.
#include "CLI/CLI.hpp"
#include "cli/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"restkv-bench — load-test an OpenAI-compatible server"};
  app.require_subcommand(1);
  int exit_code = 0;
  restkv::cli::AddBenchCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
