// restkv: LLM serving with KV-cache eviction during prefill.
#include <cstdio>

#include "CLI/CLI.hpp"
#include "cli/cli.h"
#include "common/version.h"

int main(int argc, char** argv) {
  CLI::App app{
      "restkv — an LLM server for Llama-family GGUF models with KV-cache eviction during "
      "prefill (ReST-KV)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("restkv ") + restkv::kRestkvVersion);
  int exit_code = 0;
  restkv::cli::AddInfoCommand(app, &exit_code);
  restkv::cli::AddGenerateCommand(app, &exit_code);
  restkv::cli::AddPlanCommand(app, &exit_code);
  restkv::cli::AddServeCommand(app, &exit_code);
  restkv::cli::AddBenchCommand(app, &exit_code);
  restkv::cli::AddEvalCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
