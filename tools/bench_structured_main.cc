// bench_structured: what structured outputs cost. In one run, on the same
// prompt: decode throughput of B concurrent requests constrained by a typical
// JSON schema against the same B unconstrained (B = 1, 16, 64), the time to
// compile the schema, and the token-mask work alone (per token, with the
// mask memo cold and warm) replayed over the constrained outputs. Prints
// JSON lines; see docs/structured_outputs.md (Cost).
//
// The first constrained run of each batch size meets a cold mask memo for the
// states its samples reach; later runs reuse it (as a server does).
//
//   build/tools/bench_structured [--model PATH] [--gen-tokens 64] [--threads N]
//       [--batches 1,16,64] [--repeats 3]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/default_model.h"
#include "common/thread_pool.h"
#include "engine/engine.h"
#include "kernels/cpu/cpu_backend.h"
#include "nlohmann/json.hpp"

namespace restkv {
namespace {

constexpr char kSchema[] = R"({"type": "object", "properties": {
  "name": {"type": "string", "maxLength": 40},
  "age": {"type": "integer", "minimum": 0, "maximum": 150},
  "email": {"type": "string", "format": "email"},
  "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 5},
  "active": {"type": "boolean"}},
  "required": ["name", "age", "email", "tags", "active"], "additionalProperties": false})";

class CollectingSink final : public engine::RequestSink {
 public:
  void OnTokens(const engine::TokenDelta& d) override {
    tokens_.insert(tokens_.end(), d.token_ids.begin(), d.token_ids.end());
  }
  void OnFinish(const engine::RequestSummary&) override {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }
  const std::vector<int32_t>& tokens() const { return tokens_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::vector<int32_t> tokens_;  // written on the engine thread, read after Wait()
};

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// User + system CPU seconds of this process: on a shared machine, other
// processes' load stretches wall time but not (much) the CPU time we use.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct RunResult {
  double seconds = 0;
  double cpu_seconds = 0;
  size_t tokens = 0;
  std::vector<std::vector<int32_t>> outputs;
};

RunResult Run(engine::Engine& eng, const std::vector<int32_t>& prompt, int batch, int gen_tokens,
              const std::shared_ptr<const engine::structured::CompiledGrammar>& grammar) {
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = CpuSeconds();
  for (int b = 0; b < batch; ++b) {
    engine::EngineRequest r;
    r.prompt_tokens = prompt;
    r.params.temperature = 0.8f;
    r.params.seed = 1000 + b;
    r.params.max_tokens = gen_tokens;
    r.params.ignore_eos = grammar == nullptr;  // unconstrained: exactly gen_tokens each
    r.grammar = grammar;
    sinks.push_back(std::make_shared<CollectingSink>());
    r.sink = sinks.back();
    if (!eng.Submit(std::move(r)).ok()) std::abort();
  }
  RunResult out;
  for (auto& s : sinks) {
    s->Wait();
    out.tokens += s->tokens().size();
    out.outputs.push_back(s->tokens());
  }
  out.seconds = SecondsSince(t0);
  out.cpu_seconds = CpuSeconds() - cpu0;
  return out;
}

// What the engine adds per constrained token, in microseconds: the mask,
// applying it to a [vocab] logits row, and accepting the token.
double MaskMicrosPerToken(const std::shared_ptr<const engine::structured::CompiledGrammar>& g,
                          const std::vector<std::vector<int32_t>>& outputs) {
  engine::structured::TokenBitmask mask;
  std::vector<float> row(g->vocab().vocab_size(), 0.5f);
  size_t n = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& tokens : outputs) {
    engine::structured::GrammarMatcher m(g);
    for (int32_t t : tokens) {
      m.FillNextTokenMask(&mask);
      engine::structured::ApplyTokenMask(mask, g->vocab().vocab_size(), absl::MakeSpan(row));
      if (!m.AcceptToken(t)) std::abort();
      ++n;
    }
  }
  return n == 0 ? 0 : SecondsSince(t0) * 1e6 / static_cast<double>(n);
}

int Main(int argc, char** argv) {
  CLI::App app{"restkv structured-output cost benchmark"};
  std::string model_flag;
  int gen_tokens = 64, threads = 0, repeats = 3;
  std::vector<int> batches{1, 16, 64};
  app.add_option("--model", model_flag);
  app.add_option("--gen-tokens", gen_tokens);
  app.add_option("--threads", threads);
  app.add_option("--batches", batches);
  app.add_option("--repeats", repeats, "runs of each side, alternating; the fastest is reported");
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
  const auto tv = std::chrono::steady_clock::now();
  auto vocab = engine::structured::TokenVocabulary::FromTokenizer((*model)->tokenizer());
  const double vocab_ms = SecondsSince(tv) * 1000;
  const auto tc = std::chrono::steady_clock::now();
  engine::structured::GrammarCompiler fresh(vocab);
  auto schema_grammar = fresh.Compile({engine::structured::GrammarKind::kJsonSchema, kSchema, {}});
  const double compile_ms = SecondsSince(tc) * 1000;
  if (!schema_grammar.ok()) return 1;

  engine::EngineOptions opt;
  opt.kv_cache_bytes = 2LL << 30;
  opt.max_num_seqs = 64;
  auto eng = engine::Engine::Create(**model, opt);
  if (!eng.ok()) return 1;
  auto grammar = (*eng)->grammar_compiler().Compile(
      {engine::structured::GrammarKind::kJsonSchema, kSchema, {}});
  if (!grammar.ok()) return 1;
  const std::vector<int32_t> prompt = (*model)->tokenizer().Encode(
      "Here is a JSON record describing one person, with name, age, email, tags and whether the "
      "account is active:\n",
      true, false);
  std::printf("%s\n", nlohmann::json({{"vocab_trie_ms", vocab_ms},
                                      {"vocab_size", vocab->vocab_size()},
                                      {"trie_nodes", vocab->nodes().size()},
                                      {"schema_compile_ms", compile_ms},
                                      {"threads", threads}})
                          .dump()
                          .c_str());
  Run(**eng, prompt, 1, 4, nullptr);  // warm-up
  for (int batch : batches) {
    // Alternating runs, the one using the least CPU of each: a shared
    // machine's noise only makes runs dearer.
    RunResult plain, constrained;
    for (int r = 0; r < repeats; ++r) {
      RunResult p = Run(**eng, prompt, batch, gen_tokens, nullptr);
      if (r == 0 || p.cpu_seconds < plain.cpu_seconds) plain = std::move(p);
      RunResult c = Run(**eng, prompt, batch, gen_tokens, *grammar);
      if (r == 0 || c.cpu_seconds < constrained.cpu_seconds) constrained = std::move(c);
    }
    // Cold: a new CompiledGrammar (empty memo); warm: the engine's, after the run.
    auto cold =
        std::make_shared<const engine::structured::CompiledGrammar>((*grammar)->grammar(), vocab);
    const double cold_us = MaskMicrosPerToken(cold, constrained.outputs);
    const double warm_us = MaskMicrosPerToken(*grammar, constrained.outputs);
    const double plain_tps = static_cast<double>(plain.tokens) / plain.seconds;
    const double constrained_tps = static_cast<double>(constrained.tokens) / constrained.seconds;
    // The batch takes as many steps as its longest output.
    size_t longest = 0;
    for (const auto& o : constrained.outputs) longest = std::max(longest, o.size());
    const double step_ms = plain.seconds * 1000 / gen_tokens;
    const double constrained_step_ms = constrained.seconds * 1000 / static_cast<double>(longest);
    nlohmann::json j = {
        {"batch", batch},
        {"gen_tokens", gen_tokens},
        {"unconstrained",
         {{"tokens", plain.tokens}, {"seconds", plain.seconds}, {"tokens_per_s", plain_tps}}},
        {"json_schema",
         {{"tokens", constrained.tokens},
          {"seconds", constrained.seconds},
          {"tokens_per_s", constrained_tps}}},
        {"throughput_ratio", constrained_tps / plain_tps},
        // Per step, which early-finishing constrained requests do not skew.
        {"json_schema_step_ms", constrained_step_ms},
        {"step_time_overhead", constrained_step_ms / step_ms - 1},
        {"unconstrained_cpu_s", plain.cpu_seconds},
        {"json_schema_cpu_s", constrained.cpu_seconds},
        // CPU per step (the batch takes `longest` steps constrained, gen_tokens plain).
        {"step_cpu_overhead", (constrained.cpu_seconds / static_cast<double>(longest)) /
                                      (plain.cpu_seconds / gen_tokens) -
                                  1},
        {"mask_us_per_token_cold", cold_us},
        {"mask_us_per_token_warm", warm_us},
        // The engine thread computes the batch's masks one after another.
        {"mask_ms_per_step_warm", warm_us * batch / 1000},
        {"unconstrained_step_ms", step_ms},
        {"mask_overhead_warm", warm_us * batch / 1000 / step_ms}};
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
  }
  (*eng)->Shutdown(0);
  return 0;
}

}  // namespace
}  // namespace restkv

int main(int argc, char** argv) { return restkv::Main(argc, argv); }
