// The serving engine against the simple path (Generator, one request at a
// time): batch invariance, preemption and recompute, cancellation, and page
// accounting under a randomised workload.
#include "engine/engine.h"

#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "engine/generator.h"
#include "engine/model/synthetic_model.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::engine {
namespace {

// Collects one request's events; Wait() blocks until OnFinish.
class CollectingSink final : public RequestSink {
 public:
  // delay_us slows the engine thread down on every token (tests only).
  explicit CollectingSink(int delay_us = 0) : delay_us_(delay_us) {}
  void OnTokens(const TokenDelta& d) override {
    if (delay_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us_));
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.insert(tokens_.end(), d.token_ids.begin(), d.token_ids.end());
    text_ += d.text;
  }
  void OnFinish(const RequestSummary& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++finishes_;
    summary_ = s;
    cv_.notify_all();
  }
  RequestSummary Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return finishes_ > 0; });
    return summary_;
  }
  std::vector<int32_t> tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }
  int finishes() {
    std::lock_guard<std::mutex> lock(mu_);
    return finishes_;
  }

 private:
  const int delay_us_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int32_t> tokens_;
  std::string text_;
  int finishes_ = 0;
  RequestSummary summary_;
};

// Records prompt logprobs as well.
class PromptLogprobSink final : public RequestSink {
 public:
  void OnPromptLogprobs(const std::vector<LogprobResult>& lp) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    lp_ = lp;
    tokens_before_ = tokens_.size();
  }
  void OnTokens(const TokenDelta& d) override {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.insert(tokens_.end(), d.token_ids.begin(), d.token_ids.end());
  }
  void OnFinish(const RequestSummary& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  int calls_ = 0;
  size_t tokens_before_ = 0;
  std::vector<LogprobResult> lp_;
  std::vector<int32_t> tokens_;
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticModelSpec spec;
    spec.num_layers = 3;
    spec.weight_type = kernels::GgmlType::kQ8_0;
    spec.context_length = 512;
    path_ = (std::filesystem::temp_directory_path() /
             ("restkv_engine_test_" + std::to_string(::getpid()) + ".gguf"))
                .string();
    std::ofstream(path_, std::ios::binary) << BuildSyntheticGguf(spec);
    backend_ = std::make_unique<kernels::cpu::CpuBackend>(2);
    model_ = *Model::Load(path_, *backend_);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  SamplingParams Greedy(int max_tokens) {
    SamplingParams p;
    p.temperature = 0;
    p.max_tokens = max_tokens;
    p.ignore_eos = true;
    return p;
  }
  std::vector<int32_t> Prompt(int n, int salt) {
    std::vector<int32_t> t(n);
    for (int i = 0; i < n; ++i) t[i] = (i * 31 + salt * 17 + 3) % 256;
    return t;
  }
  std::vector<int32_t> Alone(const std::vector<int32_t>& prompt, const SamplingParams& p) {
    const auto& c = model_->config();
    auto pool = *BlockPool::Create(*backend_, {c.num_kv_heads, c.head_dim, 16}, 1024);
    Generator g(*model_, *pool);
    auto r = g.Generate({prompt, p}, nullptr);
    EXPECT_TRUE(r.ok()) << r.status();
    return r->tokens;
  }
  int64_t PageBytes() {
    const auto& c = model_->config();
    return KvPageShape{c.num_kv_heads, c.head_dim, 16}.page_bytes();
  }

  std::string path_;
  std::unique_ptr<kernels::cpu::CpuBackend> backend_;
  std::unique_ptr<Model> model_;
};

TEST_F(EngineTest, BatchedGreedyEqualsAloneForSixteenPrompts) {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> alone;
  for (int i = 0; i < 16; ++i) {
    prompts.push_back(Prompt(1 + i * 9, i));
    alone.push_back(Alone(prompts.back(), Greedy(10)));
  }
  EngineOptions opt;
  opt.kv_cache_bytes = 1024 * PageBytes();
  opt.max_num_batched_tokens = 256;  // forces prefill slicing for the longer prompts
  auto engine = *Engine::Create(*model_, opt);
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  for (const auto& p : prompts) {
    sinks.push_back(std::make_shared<CollectingSink>());
    ASSERT_TRUE(engine->Submit({p, Greedy(10), 0, sinks.back()}).ok());
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    const RequestSummary s = sinks[i]->Wait();
    EXPECT_EQ(s.reason, FinishReason::kLength) << i;
    EXPECT_EQ(sinks[i]->tokens(), alone[i]) << "prompt " << i << " of length " << prompts[i].size();
  }
  engine->Shutdown(1000);
  const EngineStats st = engine->GetStats();
  EXPECT_EQ(st.kv_pages_used, 0);
  EXPECT_GT(st.kv_pages_high_water, 0);
}

// Hundreds of requests, random lengths, random cancellations, a pool small
// enough to force preemption: every request ends exactly once, completed ones
// equal their undisturbed greedy output, and every page comes back.
TEST_F(EngineTest, RandomisedWorkloadLeaksNothingAndPreemptionIsInvisible) {
  std::mt19937 rng(1234);
  struct Req {
    std::vector<int32_t> prompt;
    int max_tokens;
    bool cancel;
    std::shared_ptr<CollectingSink> sink;
    RequestHandle handle = 0;
  };
  std::vector<Req> reqs(200);
  for (size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].prompt = Prompt(1 + rng() % 60, static_cast<int>(i));
    reqs[i].max_tokens = 1 + rng() % 24;
    reqs[i].cancel = rng() % 5 == 0;
    reqs[i].sink = std::make_shared<CollectingSink>();
  }
  EngineOptions opt;
  opt.kv_cache_bytes = 40 * PageBytes();  // 40 pages; one 84-token request takes 18
  opt.max_num_seqs = 8;
  opt.max_num_batched_tokens = 64;
  auto engine = *Engine::Create(*model_, opt);
  for (auto& r : reqs) {
    auto h =
        engine->Submit({r.prompt, Greedy(r.max_tokens), static_cast<int32_t>(rng() % 3), r.sink});
    ASSERT_TRUE(h.ok()) << h.status();
    r.handle = *h;
    if (r.cancel) engine->Cancel(r.handle);
  }
  int completed = 0, cancelled = 0;
  for (auto& r : reqs) {
    const RequestSummary s = r.sink->Wait();
    if (s.reason == FinishReason::kCancelled) {
      ++cancelled;
      EXPECT_TRUE(r.cancel);
      continue;
    }
    ASSERT_EQ(s.reason, FinishReason::kLength) << s.error;
    ++completed;
  }
  engine->Shutdown(1000);
  const EngineStats st = engine->GetStats();
  EXPECT_EQ(st.kv_pages_used, 0);
  EXPECT_EQ(completed + cancelled, static_cast<int>(reqs.size()));
  EXPECT_GT(st.num_preemptions, 0) << "the pool was meant to force preemptions";
  // Outputs equal undisturbed runs (checked on every completed request).
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(reqs[i].sink->finishes(), 1);
    if (reqs[i].sink->Wait().reason != FinishReason::kLength) continue;
    EXPECT_EQ(reqs[i].sink->tokens(), Alone(reqs[i].prompt, Greedy(reqs[i].max_tokens)))
        << "request " << i;
  }
}

TEST_F(EngineTest, SubmitRejectsBadRequestsWithReasons) {
  EngineOptions opt;
  opt.kv_cache_bytes = 20 * PageBytes();
  opt.max_queue = 2;
  auto engine = *Engine::Create(*model_, opt);
  auto sink = std::make_shared<CollectingSink>();
  EXPECT_EQ(engine->Submit({{}, Greedy(4), 0, sink}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto too_long = engine->Submit({Prompt(600, 1), Greedy(4), 0, sink});
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_long.status().message().find("600"), std::string::npos) << too_long.status();
  EXPECT_NE(too_long.status().message().find("512"), std::string::npos) << too_long.status();
  EXPECT_EQ(engine->Submit({{9999}, Greedy(4), 0, sink}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // 7 pages per layer x 3 layers > 20 pages: can never fit, and says so.
  const absl::Status never_fits = engine->Submit({Prompt(100, 1), Greedy(4), 0, sink}).status();
  EXPECT_TRUE(IsKvCapacityError(never_fits)) << never_fits;
  EXPECT_NE(never_fits.message().find("21 KV pages"), std::string::npos) << never_fits;
  EXPECT_NE(never_fits.message().find("has 20 pages"), std::string::npos) << never_fits;
  SamplingParams bad = Greedy(4);
  bad.top_p = 2.0f;
  EXPECT_EQ(engine->Submit({Prompt(3, 1), bad, 0, sink}).status().code(),
            absl::StatusCode::kInvalidArgument);
  engine->Shutdown(0);
  EXPECT_EQ(engine->Submit({Prompt(3, 1), Greedy(4), 0, sink}).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(EngineTest, ShutdownCancelsWhatIsLeftAndFreesPages) {
  EngineOptions opt;
  opt.kv_cache_bytes = 200 * PageBytes();
  auto engine = *Engine::Create(*model_, opt);
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  for (int i = 0; i < 6; ++i) {
    sinks.push_back(std::make_shared<CollectingSink>(/*delay_us=*/2000));
    ASSERT_TRUE(engine->Submit({Prompt(20, i), Greedy(400), 0, sinks.back()}).ok());
  }
  engine->Shutdown(0);
  for (auto& s : sinks) {
    EXPECT_EQ(s->finishes(), 1);
    EXPECT_EQ(s->Wait().reason, FinishReason::kCancelled);
  }
  EXPECT_EQ(engine->GetStats().kv_pages_used, 0);
}

}  // namespace
}  // namespace restkv::engine

namespace restkv::engine {
namespace {

// Echo + logprobs: each prompt token's logprob equals the one computed from a
// plain all-positions forward pass of the prompt; reported once, before the
// first token; batching with other requests (and prefill slicing) changes
// nothing; too-large requests are refused.
TEST_F(EngineTest, PromptLogprobsMatchAllPositionsForward) {
  const auto& c = model_->config();
  const std::vector<int32_t> prompt = Prompt(90, 5);
  std::vector<float> logits;
  {
    auto pool = *BlockPool::Create(*backend_, {c.num_kv_heads, c.head_dim, 16}, 1024);
    SequenceKv kv(*pool, c.num_layers);
    ASSERT_TRUE(kv.Reserve(static_cast<int32_t>(prompt.size())));
    SequenceInput in{prompt, 0, kv.cached_len(), kv.page_ptrs(), LogitsMode::kAll};
    ASSERT_TRUE(model_->forward().Forward({&in, 1}, &logits).ok());
  }
  EngineOptions opt;
  opt.kv_cache_bytes = 1024 * PageBytes();
  opt.max_num_batched_tokens = 128;  // slices the 90-token prefill by layers
  auto engine = *Engine::Create(*model_, opt);
  auto other = std::make_shared<CollectingSink>();
  ASSERT_TRUE(engine->Submit({Prompt(40, 9), Greedy(6), 0, other}).ok());
  auto sink = std::make_shared<PromptLogprobSink>();
  EngineRequest req{prompt, Greedy(4), 0, sink};
  req.prompt_logprobs = 3;
  ASSERT_TRUE(engine->Submit(std::move(req)).ok());
  sink->Wait();
  other->Wait();
  EXPECT_EQ(sink->calls_, 1);
  EXPECT_EQ(sink->tokens_before_, 0u);
  EXPECT_EQ(sink->tokens_, Alone(prompt, Greedy(4)));
  EXPECT_EQ(other->tokens(), Alone(Prompt(40, 9), Greedy(6)));
  ASSERT_EQ(sink->lp_.size(), prompt.size() - 1);
  for (size_t i = 0; i + 1 < prompt.size(); ++i) {
    const LogprobResult want = ComputeLogprobs(
        absl::MakeConstSpan(logits.data() + i * c.vocab_size, c.vocab_size), prompt[i + 1], 3);
    EXPECT_EQ(sink->lp_[i].chosen.token, prompt[i + 1]);
    EXPECT_EQ(sink->lp_[i].chosen.logprob, want.chosen.logprob) << "position " << i + 1;
    ASSERT_EQ(sink->lp_[i].top.size(), 3u);
    EXPECT_EQ(sink->lp_[i].top[0].token, want.top[0].token);
  }

  EngineRequest too_many{prompt, Greedy(1), 0, std::make_shared<CollectingSink>()};
  too_many.prompt_logprobs = kMaxLogprobs + 1;
  EXPECT_EQ(engine->Submit(std::move(too_many)).status().code(),
            absl::StatusCode::kInvalidArgument);
  engine->Shutdown(1000);
  EXPECT_EQ(engine->GetStats().kv_pages_used, 0);
}

}  // namespace
}  // namespace restkv::engine
