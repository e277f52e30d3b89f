// `restkv eval`: evaluation of KV policies in process (no server).
#include "cli/cli.h"

namespace restkv::cli {

void AddEvalNiahCommand(CLI::App& eval, int* exit_code);
void AddEvalKeepCommand(CLI::App& eval, int* exit_code);
void AddEvalPplCommand(CLI::App& eval, int* exit_code);
void AddEvalTasksCommand(CLI::App& eval, int* exit_code);

void AddEvalCommand(CLI::App& app, int* exit_code) {
  CLI::App* eval = app.add_subcommand(
      "eval", "Evaluate KV policies in process: niah, tasks (RULER synthetic), ppl, keep");
  eval->require_subcommand(1);
  AddEvalNiahCommand(*eval, exit_code);
  AddEvalTasksCommand(*eval, exit_code);
  AddEvalPplCommand(*eval, exit_code);
  AddEvalKeepCommand(*eval, exit_code);
}

}  // namespace restkv::cli
