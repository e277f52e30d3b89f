// restkv: LLM serving with KV-cache eviction during prefill.
#include <cstdio>

#include "CLI/CLI.hpp"
#include "server/cli.h"
#include "server/version.h"

int main(int argc, char** argv) {
  CLI::App app{
      "restkv — an LLM server for Llama-family GGUF models with KV-cache eviction during "
      "prefill (ReST-KV)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("restkv ") + restkv::server::kRestkvVersion);
  int exit_code = 0;
  restkv::server::AddInfoCommand(app, &exit_code);
  restkv::server::AddGenerateCommand(app, &exit_code);
  restkv::server::AddPlanCommand(app, &exit_code);
  restkv::server::AddServeCommand(app, &exit_code);
  restkv::server::AddBenchCommand(app, &exit_code);
  restkv::server::AddEvalCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
