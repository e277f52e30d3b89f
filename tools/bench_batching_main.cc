// bench_batching: offline throughput of the engine with continuous batching
// against one request at a time, on the same prompts in the same run, plus
// the decode step time as the batch grows. Prints JSON lines. Also times the
// prompts' prefill alone (batched, one output token): sequential time over
// that is the most any batching could gain on this workload.
//
//   build/tools/bench_batching [--model PATH] [--num-prompts 64]
//       [--min-prompt 64] [--max-prompt 1024] [--gen-tokens 128]
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/default_model.h"
#include "common/thread_pool.h"
#include "engine/engine.h"
#include "engine/kv/sequence_kv.h"
#include "kernels/cpu/cpu_backend.h"
#include "nlohmann/json.hpp"

namespace restkv {
namespace {

class CountingSink final : public engine::RequestSink {
 public:
  void OnTokens(const engine::TokenDelta& d) override { tokens_ += d.token_ids.size(); }
  void OnFinish(const engine::RequestSummary&) override {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }
  size_t tokens() const { return tokens_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  size_t tokens_ = 0;
};

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs all prompts with at most `concurrency` in flight; returns seconds and output tokens.
std::pair<double, size_t> Run(engine::Engine& engine,
                              const std::vector<std::vector<int32_t>>& prompts, int gen_tokens,
                              size_t concurrency) {
  engine::SamplingParams p;
  p.temperature = 0;
  p.max_tokens = gen_tokens;
  p.ignore_eos = true;
  const auto t0 = std::chrono::steady_clock::now();
  size_t tokens = 0;
  for (size_t i = 0; i < prompts.size(); i += concurrency) {
    std::vector<std::shared_ptr<CountingSink>> sinks;
    for (size_t j = i; j < std::min(prompts.size(), i + concurrency); ++j) {
      sinks.push_back(std::make_shared<CountingSink>());
      if (!engine.Submit({prompts[j], p, 0, sinks.back()}).ok()) std::abort();
    }
    for (auto& s : sinks) {
      s->Wait();
      tokens += s->tokens();
    }
  }
  return {Seconds(t0), tokens};
}

int Main(int argc, char** argv) {
  CLI::App app{"restkv continuous-batching throughput benchmark"};
  std::string model_flag;
  int num_prompts = 64, min_prompt = 64, max_prompt = 1024, gen_tokens = 128, threads = 0;
  app.add_option("--model", model_flag);
  app.add_option("--num-prompts", num_prompts);
  app.add_option("--min-prompt", min_prompt);
  app.add_option("--max-prompt", max_prompt);
  app.add_option("--gen-tokens", gen_tokens);
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  auto path = cli::ResolveModelPath(model_flag);
  if (!path.ok()) return 1;
  if (threads <= 0) threads = DefaultThreadCount();
  kernels::cpu::CpuBackend backend(threads);
  auto model = engine::Model::Load(*path, backend);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  std::mt19937 rng(7);
  const std::vector<int32_t> text = (*model)->tokenizer().Encode(
      "Continuous batching keeps every request's pages in one pool and runs one forward pass "
      "per step over all of them. ",
      false, false);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < num_prompts; ++i) {
    const int n = min_prompt + static_cast<int>(rng() % (max_prompt - min_prompt + 1));
    std::vector<int32_t> p;
    while (static_cast<int>(p.size()) < n) p.insert(p.end(), text.begin(), text.end());
    p.resize(n);
    p[0] = static_cast<int32_t>(100 + i);  // distinct prompts
    prompts.push_back(std::move(p));
  }
  engine::EngineOptions opt;
  opt.kv_cache_bytes = 4LL << 30;
  opt.max_num_seqs = 64;
  auto engine = engine::Engine::Create(**model, opt);
  if (!engine.ok()) return 1;
  const auto [t1, n1] = Run(**engine, prompts, gen_tokens, 1);
  const auto [tb, nb] = Run(**engine, prompts, gen_tokens, prompts.size());
  // The same prompts batched with one output token each: the prefill work no
  // scheduler can remove, so t1 / tp bounds any batching speed-up here.
  const auto [tp, np] = Run(**engine, prompts, 1, prompts.size());
  nlohmann::json j = {
      {"prompts", num_prompts},
      {"gen_tokens", gen_tokens},
      {"threads", threads},
      {"sequential",
       {{"seconds", t1}, {"requests_per_s", num_prompts / t1}, {"output_tokens_per_s", n1 / t1}}},
      {"batched",
       {{"seconds", tb}, {"requests_per_s", num_prompts / tb}, {"output_tokens_per_s", nb / tb}}},
      {"prefill_only_seconds", tp},
      {"speedup_output_tokens_per_s", (nb / tb) / (n1 / t1)},
      {"speedup_ceiling", t1 / tp}};
  std::printf("%s\n", j.dump().c_str());
  (*engine)->Shutdown(0);

  // Decode step time against batch size, straight through the forward pass.
  const auto& c = (*model)->config();
  auto pool =
      *engine::BlockPool::Create(backend, {c.num_kv_heads, c.head_dim, 16}, 64 * c.num_layers * 4);
  for (int batch : {1, 2, 4, 8, 16, 32, 64}) {
    std::vector<std::unique_ptr<engine::SequenceKv>> kvs;
    std::vector<std::vector<int32_t>> toks(batch, std::vector<int32_t>(32, 0));
    std::vector<engine::SequenceInput> in;
    for (int b = 0; b < batch; ++b) {
      for (int i = 0; i < 32; ++i) toks[b][i] = text[(i + b) % text.size()];
      kvs.push_back(std::make_unique<engine::SequenceKv>(*pool, c.num_layers));
      kvs.back()->Reserve(32 + 16);
      in.push_back({toks[b], 0, kvs.back()->cached_len(), kvs.back()->page_ptrs()});
    }
    std::vector<float> logits;
    if (!(*model)->forward().Forward(in, &logits).ok()) return 1;
    for (int b = 0; b < batch; ++b) kvs[b]->Commit(32);
    const int steps = 16;
    const auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) {
      in.clear();
      for (int b = 0; b < batch; ++b) {
        in.push_back({absl::MakeConstSpan(&toks[b][s % 32], 1), 32 + s, kvs[b]->cached_len(),
                      kvs[b]->page_ptrs()});
      }
      if (!(*model)->forward().Forward(in, &logits).ok()) return 1;
      for (int b = 0; b < batch; ++b) kvs[b]->Commit(1);
    }
    const double ms = Seconds(t0) * 1000 / steps;
    std::printf("%s\n", nlohmann::json({{"decode_batch", batch},
                                        {"step_ms", ms},
                                        {"tokens_per_s", batch * 1000.0 / ms}})
                            .dump()
                            .c_str());
  }
  return 0;
}

}  // namespace
}  // namespace restkv

int main(int argc, char** argv) { return restkv::Main(argc, argv); }
