// bench_forward: prompt-processing and single-stream decode speed of restkv's
// forward pass on a GGUF model, in the shape llama-bench reports (pp512,
// tg128). Prints one JSON object; tools/bench-cpu puts it beside llama.cpp's
// figures from the same run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/thread_pool.h"
#include "engine/kv/block_pool.h"
#include "engine/model/model.h"
#include "engine/kv/sequence_kv.h"
#include "kernels/cpu/cpu_backend.h"
#include "nlohmann/json.hpp"
#include "cli/default_model.h"

namespace restkv {
namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int Main(int argc, char** argv) {
  CLI::App app{"restkv forward-pass benchmark (pp / tg tokens per second)"};
  std::string model_flag;
  int threads = 0, prompt_tokens = 512, gen_tokens = 128, repeats = 3;
  app.add_option("--model", model_flag, "GGUF file (default model if omitted)");
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  app.add_option("--prompt-tokens", prompt_tokens, "Prompt length for prompt processing");
  app.add_option("--gen-tokens", gen_tokens, "Tokens to decode one at a time");
  app.add_option("--repeats", repeats, "Runs of each measurement; the best is reported");
  bool unpacked = false;
  app.add_flag("--unpacked", unpacked, "Keep quantised weights in GGUF layout (older kernels)");
  CLI11_PARSE(app, argc, argv);
  auto path = cli::ResolveModelPath(model_flag);
  if (!path.ok()) {
    std::fprintf(stderr, "bench_forward: %s\n", std::string(path.status().message()).c_str());
    return 1;
  }
  if (threads <= 0) threads = DefaultThreadCount();
  kernels::cpu::CpuBackend backend(threads, !unpacked);
  auto model = engine::Model::Load(*path, backend);
  if (!model.ok()) {
    std::fprintf(stderr, "bench_forward: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  const auto& c = (*model)->config();
  auto pool = engine::BlockPool::Create(backend, {c.num_kv_heads, c.head_dim, 16},
                                        c.num_layers * ((prompt_tokens + gen_tokens) / 16 + 2));
  if (!pool.ok()) return 1;
  // A fixed, realistic token sequence: English text repeated to length.
  std::vector<int32_t> text = (*model)->tokenizer().Encode(
      "The quick brown fox jumps over the lazy dog. Paged attention stores keys and values in "
      "fixed-size blocks so that memory is allocated on demand. ",
      false, false);
  std::vector<int32_t> prompt;
  while (static_cast<int>(prompt.size()) < prompt_tokens) prompt.insert(prompt.end(), text.begin(), text.end());
  prompt.resize(prompt_tokens);

  std::vector<float> logits;
  auto run = [&](engine::SequenceKv& kv, absl::Span<const int32_t> tokens, int32_t pos) {
    if (!kv.Reserve(tokens.size())) std::abort();
    engine::SequenceInput in{tokens, pos, kv.cached_len(), kv.page_ptrs(), engine::LogitsMode::kLast};
    if (!(*model)->forward().Forward({&in, 1}, &logits).ok()) std::abort();
    kv.Commit(tokens.size());
  };
  double best_pp = 1e30, best_tg = 1e30;
  for (int r = 0; r <= repeats; ++r) {  // r == 0 warms up
    engine::SequenceKv kv(**pool, c.num_layers);
    const auto t0 = std::chrono::steady_clock::now();
    run(kv, prompt, 0);
    if (r > 0) best_pp = std::min(best_pp, Seconds(t0));
  }
  for (int r = 0; r <= repeats; ++r) {
    engine::SequenceKv kv(**pool, c.num_layers);
    run(kv, absl::MakeConstSpan(prompt.data(), 8), 0);
    int32_t next = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < gen_tokens; ++i) {
      next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      run(kv, {&next, 1}, 8 + i);
    }
    if (r > 0) best_tg = std::min(best_tg, Seconds(t0));
  }
  nlohmann::json j = {{"engine", "restkv"},
                      {"model", *path},
                      {"threads", threads},
                      {"prompt_tokens", prompt_tokens},
                      {"gen_tokens", gen_tokens},
                      {"pp_tokens_per_s", prompt_tokens / best_pp},
                      {"tg_tokens_per_s", gen_tokens / best_tg}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace restkv

int main(int argc, char** argv) { return restkv::Main(argc, argv); }
