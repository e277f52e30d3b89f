// Eviction during prefill inside the paged cache: pool pages follow the page
// arithmetic layer by layer, layers hold their policy's counts, everything
// returns, and eviction that keeps everything changes nothing.
#include <condition_variable>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>

#include "engine/engine.h"
#include "engine/generator.h"
#include "engine/gguf/gguf_file.h"
#include "engine/kv/kv_layer_hook.h"
#include "engine/kv/page_math.h"
#include "engine/model/llama_model.h"
#include "engine/testing/synthetic_model_file.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::engine {
namespace {

class EvictionEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = std::make_unique<kernels::cpu::CpuBackend>(2);
    model_ = LoadGqaTestModel(*backend_, 2048, "eviction_test");
    ASSERT_NE(model_, nullptr);
  }

  std::vector<int32_t> Prompt(int n, int salt) {
    std::vector<int32_t> t(n);
    for (int i = 0; i < n; ++i) t[i] = (i * 29 + salt * 13 + 7) % 256;
    return t;
  }
  KvPolicyConfig Policy(const char* name, int budget) {
    KvPolicyConfig p;
    p.kind = *ParseKvPolicy(name);
    p.budget = budget;
    return p;
  }

  std::unique_ptr<kernels::cpu::CpuBackend> backend_;
  std::unique_ptr<Model> model_;
};

// The pool's high-water mark during prefill and the pages held after it are
// exactly the page arithmetic admission uses; each layer holds its policy's
// count; the freed pages went back before the next layer.
TEST_F(EvictionEngineTest, PoolFollowsPageArithmeticLayerByLayer) {
  const ModelConfig& c = model_->config();
  auto pool = *BlockPool::Create(*backend_, {c.num_kv_heads, c.head_dim, 16}, 512);
  const KvPageMath math{c.num_layers, 16};
  const int32_t n = 300;
  for (const char* name :
       {"full", "streamingllm", "h2o", "tova", "snapkv", "pyramidkv", "restkv"}) {
    SCOPED_TRACE(name);
    const KvPolicyConfig policy = Policy(name, 64);
    const std::vector<int32_t> prompt = Prompt(n, 1);
    SequenceKv kv(*pool, c.num_layers);
    EvictionReport report;
    pool->ResetHighWater();
    SequenceInput in{prompt, 0, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
    LayerEvictor evictor(model_->config(), model_->weights(), model_->backend());
    KvLayerHook hook(kv, policy, evictor, &report);
    in.hook = &hook;
    std::vector<float> logits;
    ASSERT_TRUE(model_->forward().Forward({&in, 1}, &logits).ok());
    EXPECT_EQ(pool->high_water(), math.PrefillPeakPages(policy, n));
    EXPECT_EQ(pool->num_used(), math.PagesAfterPrefill(policy, n));
    for (int32_t l = 0; l < c.num_layers; ++l) {
      EXPECT_EQ(kv.cached_len()[l], KeptTokensForLayer(policy, l, c.num_layers, n))
          << "layer " << l;
    }
    if (std::string(name) != "full") {
      EXPECT_LT(math.PrefillPeakPages(policy, n), math.PrefillPeakPages(KvPolicyConfig{}, n));
      EXPECT_GT(report.pages_released, 0);
      EXPECT_EQ(report.tokens_kept + report.tokens_evicted, int64_t{n} * c.num_layers);
    }
    kv.Release();
    EXPECT_EQ(pool->num_free(), pool->num_pages());
  }
}

std::vector<int32_t> Greedy(Engine& engine, const std::vector<int32_t>& prompt,
                            const KvPolicyConfig& policy, RequestSummary* summary) {
  struct Sink : RequestSink {
    std::vector<int32_t> tokens;
    RequestSummary s;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    void OnTokens(const TokenDelta& d) override {
      tokens.insert(tokens.end(), d.token_ids.begin(), d.token_ids.end());
    }
    void OnFinish(const RequestSummary& r) override {
      std::lock_guard<std::mutex> lock(mu);
      s = r;
      done = true;
      cv.notify_all();
    }
  };
  auto sink = std::make_shared<Sink>();
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = 12;
  p.ignore_eos = true;
  EngineRequest r{prompt, p, 0, sink};
  r.kv_policy = policy;
  EXPECT_TRUE(engine.Submit(std::move(r)).ok());
  std::unique_lock<std::mutex> lock(sink->mu);
  sink->cv.wait(lock, [&] { return sink->done; });
  if (summary != nullptr) *summary = sink->s;
  return sink->tokens;
}

TEST_F(EvictionEngineTest, KeepingEverythingChangesNothing) {
  EngineOptions opt;
  opt.kv_cache_bytes = 64 << 20;
  auto engine = *Engine::Create(*model_, opt);
  const std::vector<int32_t> prompt = Prompt(200, 2);
  const std::vector<int32_t> base = Greedy(*engine, prompt, KvPolicyConfig{}, nullptr);
  EXPECT_EQ(Greedy(*engine, prompt, Policy("full", 0), nullptr), base);
  EXPECT_EQ(Greedy(*engine, prompt, Policy("restkv", 200), nullptr), base);
  EXPECT_EQ(Greedy(*engine, prompt, Policy("snapkv", 512), nullptr), base);
  RequestSummary s;
  Greedy(*engine, prompt, Policy("restkv", 64), &s);
  EXPECT_EQ(s.kv_tokens_kept, 64);
  EXPECT_EQ(s.kv_tokens_evicted, 136);
  engine->Shutdown(1000);
  const EngineStats st = engine->GetStats();
  EXPECT_EQ(st.kv_pages_used, 0);
  EXPECT_GT(st.kv_pages_released_by_eviction, 0);
}

// Admission uses the post-eviction footprint: a pool that cannot hold two
// full-cache prompts holds many compressed ones at once.
TEST_F(EvictionEngineTest, AdmissionCountsThePostEvictionFootprint) {
  const ModelConfig& c = model_->config();
  const KvPageMath math{c.num_layers, 16};
  const int32_t n = 1000;
  const int64_t full_peak = math.PrefillPeakPages(KvPolicyConfig{}, n + 16);
  EngineOptions opt;
  opt.kv_cache_bytes = (full_peak + 8) * KvPageShape{c.num_kv_heads, c.head_dim, 16}.page_bytes();
  auto engine = *Engine::Create(*model_, opt);
  const KvPolicyConfig restkv = Policy("restkv", 64);
  const int64_t per_request = math.PagesAfterDecode(restkv, n, 16);
  ASSERT_GE((full_peak + 8) / per_request, 4)
      << "the test wants room for several compressed requests";
  std::vector<std::thread> clients;
  std::vector<RequestSummary> summaries(4);
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] { Greedy(*engine, Prompt(n, 10 + i), restkv, &summaries[i]); });
  }
  for (auto& t : clients) t.join();
  for (const RequestSummary& s : summaries) {
    EXPECT_EQ(s.reason, FinishReason::kLength);
    EXPECT_EQ(s.num_preemptions, 0);
  }
  engine->Shutdown(1000);
  EXPECT_EQ(engine->GetStats().kv_pages_used, 0);
}

}  // namespace
}  // namespace restkv::engine

namespace restkv::engine {
namespace {

TEST(KvPageMathTest, HandComputedFootprints) {
  const KvPageMath math{4, 16};
  KvPolicyConfig snap;
  snap.kind = KvPolicyKind::kSnapKv;
  snap.budget = 64;
  // Layer l runs on 300 tokens (19 pages) while layers < l hold 64 (4 pages).
  EXPECT_EQ(math.PrefillPeakPages(snap, 300), 3 * 4 + 19);
  EXPECT_EQ(math.PagesAfterPrefill(snap, 300), 16);
  EXPECT_EQ(math.PagesAfterDecode(snap, 300, 1), 4 * 5);  // 65 slots: a 5th page per layer
  EXPECT_EQ(math.MaxConcurrent(snap, 300, 0, 100), (100 - 31) / 16 + 1);
  const KvPolicyConfig full;
  EXPECT_EQ(math.PrefillPeakPages(full, 300), 4 * 19);
  EXPECT_EQ(math.MaxConcurrent(full, 300, 0, 100), 1);
  EXPECT_EQ(math.MaxConcurrent(full, 300, 0, 75), 0);
  // Prompts within the budget are not evicted.
  EXPECT_EQ(math.PrefillPeakPages(snap, 64), 4 * 4);
  // A 256-token shared prefix: 16 blocks a layer held once for full, none
  // for an evicting policy; 300 tokens hold 19 pages a layer, 3 of them own.
  EXPECT_EQ(math.SharedPrefixPages(full, 300, 256), 4 * 16);
  EXPECT_EQ(math.SharedPrefixPages(snap, 300, 256), 0);
  EXPECT_EQ(math.SharedPrefixPages(full, 256, 256), 4 * 15) << "the last token is computed";
  EXPECT_EQ(math.MaxConcurrent(full, 300, 0, 400, 256), (400 - 76) / (4 * 3) + 1);
  EXPECT_EQ(math.MaxConcurrent(snap, 300, 0, 100, 256), (100 - 31) / 16 + 1);
}

}  // namespace
}  // namespace restkv::engine
