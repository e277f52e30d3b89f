#include "eval/eval_runner.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <numeric>

#include "absl/strings/str_format.h"
#include "engine/kv/kv_layer_hook.h"
#include "engine/kv/sequence_kv.h"

namespace restkv::eval {
namespace {

// Collects one request's text and summary; Wait() blocks the caller.
class CollectSink final : public engine::RequestSink {
 public:
  void OnTokens(const engine::TokenDelta& delta) override {
    std::lock_guard<std::mutex> lock(mu_);
    text_ += delta.text;
  }
  void OnFinish(const engine::RequestSummary& summary) override {
    std::lock_guard<std::mutex> lock(mu_);
    summary_ = summary;
    done_ = true;
    cv_.notify_all();
  }
  std::pair<std::string, engine::RequestSummary> Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    return {text_, summary_};
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::string text_;
  engine::RequestSummary summary_;
};

absl::Status CheckPrompt(const engine::ModelConfig& c, size_t n) {
  if (n == 0) return absl::InvalidArgumentError("the prompt is empty");
  if (n > static_cast<size_t>(c.context_length)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d tokens do not fit the model's context length %d", n, c.context_length));
  }
  return absl::OkStatus();
}

}  // namespace

double NegLogLikelihood(const float* logits, int32_t vocab, int32_t target) {
  double mx = logits[0];
  for (int32_t i = 1; i < vocab; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int32_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  return -(static_cast<double>(logits[target]) - mx - std::log(sum));
}

EvalRunner::~EvalRunner() {
  if (engine_) engine_->Shutdown(0);
}

absl::StatusOr<EvalAnswer> EvalRunner::Generate(const std::vector<int32_t>& prompt,
                                                const engine::KvPolicyConfig& policy,
                                                int32_t max_tokens) {
  const engine::ModelConfig& c = model_.config();
  if (!engine_) {
    engine::EngineOptions opt;
    // One sequence of the whole context, twice over for slack.
    const int64_t token_bytes = 2LL * c.num_layers * c.num_kv_heads * c.head_dim * 4;
    opt.kv_cache_bytes = std::max<int64_t>(64LL << 20, 2LL * token_bytes * (c.context_length + 64));
    opt.max_num_seqs = 1;
    opt.max_num_batched_tokens = std::max<int32_t>(2048, c.context_length);
    auto e = engine::Engine::Create(model_, opt);
    if (!e.ok()) return e.status();
    engine_ = std::move(*e);
  }
  engine::EngineRequest req;
  req.prompt_tokens = prompt;
  req.params.temperature = 0.0f;
  req.params.max_tokens = max_tokens;
  req.params.seed = 0;
  req.kv_policy = policy;
  auto sink = std::make_shared<CollectSink>();
  req.sink = sink;
  auto handle = engine_->Submit(std::move(req));
  if (!handle.ok()) return handle.status();
  auto [text, summary] = sink->Wait();
  if (summary.reason == engine::FinishReason::kError) return summary.error;
  EvalAnswer a;
  a.text = std::move(text);
  a.prompt_tokens = summary.prompt_tokens;
  a.kv_tokens_kept = summary.kv_tokens_kept;
  a.ttft_ms = summary.ttft_ms;
  a.e2e_ms = summary.e2e_ms;
  return a;
}

absl::Status EvalRunner::EnsurePool() {
  if (pool_) return absl::OkStatus();
  const engine::ModelConfig& c = model_.config();
  const int32_t bs = model_.forward().block_size();
  const int32_t pages = c.num_layers * ((c.context_length + bs - 1) / bs + 2);
  auto pool = engine::BlockPool::Create(
      model_.backend(), {c.num_kv_heads, c.head_dim, bs, model_.forward().kv_dtype()}, pages);
  if (!pool.ok()) return pool.status();
  pool_ = std::move(*pool);
  return absl::OkStatus();
}

absl::StatusOr<KeptSelection> EvalRunner::Keep(const std::vector<int32_t>& prompt,
                                               const engine::KvPolicyConfig& policy) {
  const engine::ModelConfig& c = model_.config();
  if (absl::Status s = CheckPrompt(c, prompt.size()); !s.ok()) return s;
  if (absl::Status s = policy.Validate(); !s.ok()) return s;
  if (absl::Status s = EnsurePool(); !s.ok()) return s;
  const int32_t n = static_cast<int32_t>(prompt.size());
  engine::SequenceKv kv(*pool_, c.num_layers);
  engine::EvictionReport report;
  report.record_kept = true;
  engine::SequenceInput in;
  in.tokens = prompt;
  in.cached_len = kv.cached_len();
  in.pages = kv.page_ptrs();
  in.logits = engine::LogitsMode::kNone;
  engine::KvLayerHook hook(kv, policy, evictor_, &report);
  in.hook = &hook;
  std::vector<float> logits;
  if (absl::Status s = model_.forward().Forward({&in, 1}, &logits); !s.ok()) return s;
  KeptSelection out;
  out.num_tokens = n;
  out.evicted = engine::EvictsPrompt(policy, n);
  out.kept.resize(c.num_layers);
  std::vector<int32_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  for (int32_t l = 0; l < c.num_layers; ++l) {
    if (out.evicted && static_cast<size_t>(l) < report.kept.size() && !report.kept[l].empty()) {
      out.kept[l] = report.kept[l];
    } else {
      out.kept[l].assign(c.num_kv_heads, all);
    }
  }
  return out;
}

absl::StatusOr<PerplexityResult> EvalRunner::Perplexity(const std::vector<int32_t>& tokens,
                                                        int32_t context,
                                                        const engine::KvPolicyConfig& policy) {
  const engine::ModelConfig& c = model_.config();
  if (absl::Status s = CheckPrompt(c, tokens.size()); !s.ok()) return s;
  if (context < 1 || static_cast<size_t>(context) >= tokens.size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the context (%d tokens) must leave at least one of the %d tokens to score",
                        context, tokens.size()));
  }
  if (absl::Status s = policy.Validate(); !s.ok()) return s;
  if (absl::Status s = EnsurePool(); !s.ok()) return s;
  const int32_t V = c.vocab_size;
  const int32_t m = static_cast<int32_t>(tokens.size()) - context;
  engine::SequenceKv kv(*pool_, c.num_layers);
  engine::EvictionReport report;
  std::vector<float> logits;
  {
    engine::SequenceInput in;
    in.tokens = absl::MakeConstSpan(tokens.data(), context);
    in.cached_len = kv.cached_len();
    in.pages = kv.page_ptrs();
    in.logits = engine::LogitsMode::kLast;
    engine::KvLayerHook hook(kv, policy, evictor_, &report);
    in.hook = &hook;
    if (absl::Status s = model_.forward().Forward({&in, 1}, &logits); !s.ok()) return s;
  }
  PerplexityResult r;
  r.context_tokens = context;
  r.scored_tokens = m;
  for (int32_t v : kv.cached_len()) r.kv_slots_after_prefill += v;
  r.nll_sum = NegLogLikelihood(logits.data(), V, tokens[context]);
  if (m > 1) {
    // Teacher forcing: feed the known continuation (but its last token) at
    // its original positions against the compressed cache.
    engine::SequenceInput in;
    in.tokens = absl::MakeConstSpan(tokens.data() + context, m - 1);
    in.first_position = context;
    in.cached_len = kv.cached_len();
    in.pages = kv.page_ptrs();
    in.head_len = kv.head_len();
    in.padding_end = kv.padding_end();
    in.logits = engine::LogitsMode::kAll;
    engine::KvLayerHook hook(kv);
    in.hook = &hook;
    if (absl::Status s = model_.forward().Forward({&in, 1}, &logits); !s.ok()) return s;
    for (int32_t i = 0; i + 1 < m; ++i) {
      r.nll_sum +=
          NegLogLikelihood(logits.data() + static_cast<int64_t>(i) * V, V, tokens[context + 1 + i]);
    }
  }
  r.perplexity = std::exp(r.nll_sum / m);
  return r;
}

}  // namespace restkv::eval
