// The prefix cache through the engine: a request that shares full prompt
// blocks with an earlier one maps them (usage's cached tokens say how many),
// greedy outputs equal those of an engine without the cache, the counters
// add up, requests that want prompt logprobs compute every row, and no page
// is left held.
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/kv/block_pool.h"
#include "engine/testing/finish_sink.h"
#include "engine/testing/synthetic_model_file.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::engine {
namespace {

class PrefixCacheEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = std::make_unique<kernels::cpu::CpuBackend>(2);
    model_ = LoadGqaTestModel(*backend_, 1024, "prefix_cache_engine");
    ASSERT_NE(model_, nullptr);
  }

  struct Out {
    std::vector<int32_t> tokens;
    RequestSummary summary;
  };
  // Runs the prompts one after the other on one engine.
  std::vector<Out> RunAll(bool caching, const std::vector<std::vector<int32_t>>& prompts,
                          int32_t logprobs_index, EngineStats* stats,
                          const std::vector<KvPolicyConfig>& policies = {}) {
    const auto& c = model_->config();
    EngineOptions opt;
    opt.kv_cache_bytes = 512LL * KvPageShape{c.num_kv_heads, c.head_dim, 16}.page_bytes();
    opt.enable_prefix_caching = caching;
    auto engine = *Engine::Create(*model_, opt);
    std::vector<Out> outs;
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto sink = std::make_shared<FinishSink>();
      EngineRequest r;
      r.prompt_tokens = prompts[i];
      r.params.temperature = 0;
      r.params.max_tokens = 8;
      r.params.ignore_eos = true;
      r.sink = sink;
      if (static_cast<int32_t>(i) == logprobs_index) r.prompt_logprobs = 0;
      if (i < policies.size()) r.kv_policy = policies[i];
      EXPECT_TRUE(engine->Submit(std::move(r)).ok());
      RequestSummary s = sink->Wait();
      EXPECT_EQ(s.reason, FinishReason::kLength) << s.error;
      outs.push_back({sink->tokens(), s});
    }
    *stats = engine->GetStats();
    return outs;
  }

  std::unique_ptr<kernels::cpu::CpuBackend> backend_;
  std::unique_ptr<Model> model_;
};

TEST_F(PrefixCacheEngineTest, SharedBlocksAreMappedAndOutputsEqualTheUncachedOnes) {
  std::vector<int32_t> shared(100);
  for (size_t t = 0; t < shared.size(); ++t) shared[t] = static_cast<int32_t>((t * 13 + 5) % 256);
  auto with = [&](int32_t len, int32_t salt) {
    std::vector<int32_t> p = shared;
    for (int32_t t = 0; t < len; ++t) p.push_back((t * 29 + salt) % 256);
    return p;
  };
  const std::vector<std::vector<int32_t>> prompts = {
      with(20, 1),  // A: 120 tokens, nothing cached yet
      with(30, 2),  // B: shares A's first 6 full blocks (96 tokens)
      with(20, 1),  // C: A again: 7 full blocks (112), the 8th holds the last token
      with(20, 3),  // D: prompt logprobs: every row computed
      {shared.begin(), shared.begin() + 10},  // E: shorter than a block
  };
  EngineStats on_stats, off_stats;
  const std::vector<Out> on = RunAll(true, prompts, 3, &on_stats);
  const std::vector<Out> off = RunAll(false, prompts, 3, &off_stats);
  ASSERT_EQ(on.size(), prompts.size());
  const std::vector<int32_t> want_cached = {0, 96, 112, 0, 0};
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(on[i].tokens, off[i].tokens) << "request " << i;
    EXPECT_EQ(on[i].summary.cached_tokens, want_cached[i]) << "request " << i;
    EXPECT_EQ(off[i].summary.cached_tokens, 0) << "request " << i;
  }
  // Lookups by A, B, C and E (D looks nothing up).
  EXPECT_EQ(on_stats.prefix_cache_query_tokens, 120 + 130 + 120 + 10);
  EXPECT_EQ(on_stats.prefix_cache_hit_tokens, 96 + 112);
  EXPECT_GT(on_stats.prefix_cache_blocks, 0);
  EXPECT_EQ(on_stats.kv_pages_used, 0) << "cached blocks nobody holds count as free";
  EXPECT_EQ(off_stats.prefix_cache_query_tokens, 0);
  EXPECT_EQ(off_stats.prefix_cache_blocks, 0);
  EXPECT_EQ(off_stats.kv_pages_used, 0);
}

// An evicting request leaves its uncompressed prompt blocks cached: a
// full-cache request with the same prefix maps them and an evicting one
// copies from them, with outputs (and kept counts) equal to the engine
// without the cache.
TEST_F(PrefixCacheEngineTest, EvictingRequestsFillTheCacheForTheNextOnes) {
  std::vector<int32_t> shared(200);
  for (size_t t = 0; t < shared.size(); ++t) shared[t] = static_cast<int32_t>((t * 17 + 3) % 256);
  auto with = [&](int32_t len, int32_t salt) {
    std::vector<int32_t> p = shared;
    for (int32_t t = 0; t < len; ++t) p.push_back((t * 23 + salt) % 256);
    return p;
  };
  KvPolicyConfig restkv;
  restkv.kind = KvPolicyKind::kRestKv;
  restkv.budget = 64;
  const std::vector<std::vector<int32_t>> prompts = {
      with(40, 1),  // A restkv: nothing cached; stages 15 blocks (240 tokens)
      with(30, 2),  // B full: maps A's first 12 blocks (the shared 192)
      with(40, 1),  // C restkv, A's prompt: holds up to its window, (240 - 32) / 16 = 13 blocks
      with(40, 1),  // D full, A's prompt: 14 blocks (the 15th holds the last token)
  };
  const std::vector<KvPolicyConfig> policies = {restkv, {}, restkv, {}};
  EngineStats on_stats, off_stats;
  const std::vector<Out> on = RunAll(true, prompts, -1, &on_stats, policies);
  const std::vector<Out> off = RunAll(false, prompts, -1, &off_stats, policies);
  ASSERT_EQ(on.size(), prompts.size());
  const std::vector<int32_t> want_cached = {0, 192, 208, 224};
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(on[i].tokens, off[i].tokens) << "request " << i;
    EXPECT_EQ(on[i].summary.cached_tokens, want_cached[i]) << "request " << i;
    EXPECT_EQ(on[i].summary.kv_tokens_kept, off[i].summary.kv_tokens_kept) << "request " << i;
  }
  EXPECT_EQ(on[0].summary.kv_tokens_kept, 64);
  EXPECT_EQ(on_stats.kv_pages_used, 0);
  EXPECT_EQ(off_stats.kv_pages_used, 0);
}

}  // namespace
}  // namespace restkv::engine
