// bench_forward: prompt-processing and single-stream decode speed of restkv's
// forward pass on a GGUF model, in the shape llama-bench reports (pp512,
// tg128; --decode-context 4096 is llama-bench's tg128@d4096). Prints one JSON
// object; tools/bench-cpu puts it beside llama.cpp's figures from the same
// run. It also reports the resident memory after loading and at its peak,
// and the packed kernels' path (RESTKV_CPU_ISA=avx2 forces AVX2).
// --kv-cache-dtype picks the KV page dtype (default f32, the figure the
// earlier runs report); --sparse-prefill times block-sparse prefill
// (prefill_ms of a fresh prompt is its time to first token, without
// sampling).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/default_model.h"
#include "cli/sparse_prefill_flag.h"
#include "common/thread_pool.h"
#include "engine/kv/block_pool.h"
#include "engine/kv/sequence_kv.h"
#include "engine/model/model.h"
#include "kernels/cpu/cpu_backend.h"
#include "nlohmann/json.hpp"

namespace restkv {
namespace {

// A "VmRSS:"-style line of /proc/self/status, in bytes (0 if unavailable).
int64_t ProcStatusBytes(const char* key) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  int64_t kib = 0;
  const size_t n = std::strlen(key);
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, key, n) == 0) kib = std::atoll(line + n);
  }
  std::fclose(f);
  return kib * 1024;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int Main(int argc, char** argv) {
  CLI::App app{"restkv forward-pass benchmark (pp / tg tokens per second)"};
  std::string model_flag;
  int threads = 0, prompt_tokens = 512, gen_tokens = 128, repeats = 3, warmups = 1;
  app.add_option("--model", model_flag, "GGUF file (default model if omitted)");
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  app.add_option("--prompt-tokens", prompt_tokens, "Prompt length for prompt processing");
  app.add_option("--gen-tokens", gen_tokens, "Tokens to decode one at a time");
  app.add_option("--repeats", repeats, "Runs of each measurement; the best is reported");
  app.add_option("--warmups", warmups,
                 "Untimed runs before them (0 for long prompts, where one run takes minutes)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  int decode_context = 8;
  app.add_option("--decode-context", decode_context,
                 "Tokens already in the cache when decoding starts (prefilled, not timed)");
  std::string kv_dtype_name = "f32";
  app.add_option("--kv-cache-dtype", kv_dtype_name, "KV cache element type: f32, f16, bf16, q8_0");
  bool unpacked = false;
  app.add_flag("--unpacked", unpacked, "Keep quantised weights in GGUF layout (older kernels)");
  cli::SparsePrefillFlags sparse;
  cli::AddSparsePrefillFlags(&app, &sparse);
  CLI11_PARSE(app, argc, argv);
  auto path = cli::ResolveModelPath(model_flag);
  if (!path.ok()) {
    std::fprintf(stderr, "bench_forward: %s\n", std::string(path.status().message()).c_str());
    return 1;
  }
  if (threads <= 0) threads = DefaultThreadCount();
  const std::optional<kernels::KvDtype> kv_dtype = kernels::KvDtypeFromName(kv_dtype_name);
  if (!kv_dtype.has_value() || decode_context < 1) {
    std::fprintf(stderr,
                 "bench_forward: --kv-cache-dtype must be f32, f16, bf16 or q8_0 (got '%s') "
                 "and --decode-context positive\n",
                 kv_dtype_name.c_str());
    return 1;
  }
  kernels::cpu::CpuBackend backend(threads, !unpacked);
  engine::ModelOptions options;
  options.kv_dtype = *kv_dtype;
  options.sparse_prefill = cli::ToSparsePrefill(sparse);
  auto model = engine::Model::Load(*path, backend, options);
  if (!model.ok()) {
    std::fprintf(stderr, "bench_forward: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  // Resident memory once the weights are ready (file pages the backend
  // copied from are dropped by the loader), before any KV page exists.
  const int64_t rss_after_load = ProcStatusBytes("VmRSS:");
  const auto& c = (*model)->config();
  const int32_t max_tokens = std::max(prompt_tokens, decode_context) + gen_tokens;
  auto pool = engine::BlockPool::Create(backend, {c.num_kv_heads, c.head_dim, 16, *kv_dtype},
                                        c.num_layers * (max_tokens / 16 + 2));
  if (!pool.ok()) return 1;
  // A fixed, realistic token sequence: English text repeated to length.
  std::vector<int32_t> text = (*model)->tokenizer().Encode(
      "The quick brown fox jumps over the lazy dog. Paged attention stores keys and values in "
      "fixed-size blocks so that memory is allocated on demand. ",
      false, false);
  std::vector<int32_t> prompt;
  while (static_cast<int>(prompt.size()) < std::max(prompt_tokens, decode_context)) {
    prompt.insert(prompt.end(), text.begin(), text.end());
  }

  std::vector<float> logits;
  auto run = [&](engine::SequenceKv& kv, absl::Span<const int32_t> tokens, int32_t pos) {
    if (!kv.Reserve(tokens.size())) std::abort();
    engine::SequenceInput in{tokens, pos, kv.cached_len(), kv.page_ptrs(),
                             engine::LogitsMode::kLast};
    if (!(*model)->forward().Forward({&in, 1}, &logits).ok()) std::abort();
    kv.Commit(tokens.size());
  };
  double best_pp = 1e30, best_tg = 1e30;
  for (int r = 1 - warmups; r <= repeats; ++r) {  // r <= 0 warm up
    engine::SequenceKv kv(**pool, c.num_layers);
    const auto t0 = std::chrono::steady_clock::now();
    run(kv, absl::MakeConstSpan(prompt.data(), prompt_tokens), 0);
    if (r > 0) best_pp = std::min(best_pp, Seconds(t0));
  }
  for (int r = 1 - warmups; r <= repeats; ++r) {
    engine::SequenceKv kv(**pool, c.num_layers);
    run(kv, absl::MakeConstSpan(prompt.data(), decode_context), 0);
    int32_t next = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < gen_tokens; ++i) {
      next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      run(kv, {&next, 1}, decode_context + i);
    }
    if (r > 0) best_tg = std::min(best_tg, Seconds(t0));
  }
  nlohmann::json j = {
      {"engine", "restkv"},
      {"model", *path},
      {"threads", threads},
      {"prompt_tokens", prompt_tokens},
      {"gen_tokens", gen_tokens},
      {"decode_context", decode_context},
      {"kv_cache_dtype", kv_dtype_name},
      {"kernel_isa", backend.kernel_isa().has_value()
                         ? std::string(kernels::cpu::KernelIsaName(*backend.kernel_isa()))
                         : std::string("none")},
      {"rss_after_load_bytes", rss_after_load},
      {"peak_rss_bytes", ProcStatusBytes("VmHWM:")},
      {"pp_tokens_per_s", prompt_tokens / best_pp},
      {"tg_tokens_per_s", gen_tokens / best_tg}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace restkv

int main(int argc, char** argv) { return restkv::Main(argc, argv); }
