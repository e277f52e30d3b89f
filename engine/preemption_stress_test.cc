// Engine + scheduler under KV pressure for every eviction policy: random
// prompts, a pool small enough to force preemptions, and cancellations that
// arrive mid-decode. Every request must end within a bound of steps with a
// reason, every page must come back, and the greedy output of every finished
// request must equal the same request run alone on an ample pool — so a
// preempted request keeps its policy and budget, and its recompute rebuilds
// the cache it lost (engine.h).
//
// With shared prefixes (Case::shared_prefix) the prompts come in groups that
// start with the same tokens, every third request uses the full cache (so
// that blocks get cached for the evicting ones to read), the pressured
// engine runs with the prefix cache on and the unpressured one with it off:
// outputs must still be equal, no page another request or the cache holds
// may be freed (the pool checks), and nothing may leak.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/kv/page_math.h"
#include "engine/model/synthetic_model.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::engine {
namespace {

// Collects tokens; after `cancel_after` tokens (if >= 0) cancels its own
// request from the engine thread, i.e. mid-decode.
class Sink final : public RequestSink {
 public:
  Sink(Engine* engine, int cancel_after) : engine_(engine), cancel_after_(cancel_after) {}
  void set_handle(RequestHandle h) { handle_.store(h); }
  void OnTokens(const TokenDelta& d) override {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.insert(tokens_.end(), d.token_ids.begin(), d.token_ids.end());
    const RequestHandle h = handle_.load();
    if (cancel_after_ >= 0 && static_cast<int>(tokens_.size()) >= cancel_after_ && h != 0) {
      engine_->Cancel(h);
    }
  }
  void OnFinish(const RequestSummary& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++finishes_;
    summary_ = s;
    cv_.notify_all();
  }
  // The summary, or nullopt if the request did not finish within `timeout`.
  std::optional<RequestSummary> WaitFor(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return finishes_ > 0; })) return std::nullopt;
    return summary_;
  }
  std::vector<int32_t> tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }
  int finishes() {
    std::lock_guard<std::mutex> lock(mu_);
    return finishes_;
  }

 private:
  Engine* const engine_;
  const int cancel_after_;
  std::atomic<RequestHandle> handle_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int32_t> tokens_;
  int finishes_ = 0;
  RequestSummary summary_;
};

struct Case {
  const char* policy;
  int32_t budget;
  kernels::KvDtype dtype = kernels::KvDtype::kF32;  // of the KV pages
  bool shared_prefix = false;
};

class PreemptionStressTest : public ::testing::TestWithParam<Case> {
 protected:
  static constexpr int32_t kLayers = 4;
  static constexpr int32_t kBlock = 16;

  void SetUp() override {
    SyntheticModelSpec spec;
    spec.num_layers = kLayers;
    spec.num_heads = 4;
    spec.num_kv_heads = 2;
    spec.weight_type = kernels::GgmlType::kQ8_0;
    spec.context_length = 1024;
    path_ = (std::filesystem::temp_directory_path() /
             ("restkv_preemption_stress_" + std::to_string(::getpid()) + ".gguf"))
                .string();
    std::ofstream(path_, std::ios::binary) << BuildSyntheticGguf(spec);
    backend_ = std::make_unique<kernels::cpu::CpuBackend>(2);
    ModelOptions options;
    options.kv_dtype = GetParam().dtype;
    model_ = *Model::Load(path_, *backend_, options);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  int64_t PageBytes() const {
    const auto& c = model_->config();
    return KvPageShape{c.num_kv_heads, c.head_dim, kBlock, GetParam().dtype}.page_bytes();
  }
  static SamplingParams Greedy(int max_tokens) {
    SamplingParams p;
    p.temperature = 0;
    p.max_tokens = max_tokens;
    p.ignore_eos = true;
    return p;
  }

  std::string path_;
  std::unique_ptr<kernels::cpu::CpuBackend> backend_;
  std::unique_ptr<Model> model_;
};

TEST_P(PreemptionStressTest, EveryRequestEndsNoPageLeaksOutputsEqualUnpressured) {
  const Case tc = GetParam();
  KvPolicyConfig policy;
  policy.kind = *ParseKvPolicy(tc.policy);
  policy.budget = tc.budget;
  policy.window = 8;
  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>{}(tc.policy)) + tc.budget);

  struct Req {
    std::vector<int32_t> prompt;
    int max_tokens = 0;
    int cancel_after = -1;  // -1: not cancelled
    std::shared_ptr<Sink> sink;
    KvPolicyConfig policy;
  };
  std::vector<Req> reqs(20);
  const KvPageMath math{kLayers, kBlock};
  int64_t biggest = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    Req& r = reqs[i];
    r.prompt.resize(24 + rng() % 100);
    for (size_t t = 0; t < r.prompt.size(); ++t) r.prompt[t] = (t * 31 + i * 17 + rng() % 7) % 256;
    if (tc.shared_prefix) {
      // Four groups; a group's prompts share their first 16..80 tokens.
      const size_t shared = std::min<size_t>(r.prompt.size() - 1, 16 + 16 * (i % 5));
      for (size_t t = 0; t < shared; ++t) r.prompt[t] = static_cast<int32_t>((t * 7 + i % 4) % 256);
    }
    r.max_tokens = 4 + rng() % 28;
    if (rng() % 5 == 0) r.cancel_after = static_cast<int>(rng() % r.max_tokens);
    r.policy = tc.shared_prefix && i % 3 == 0 ? KvPolicyConfig{} : policy;
    const int32_t n = static_cast<int32_t>(r.prompt.size());
    biggest = std::max({biggest, math.PrefillPeakPages(r.policy, n + r.max_tokens),
                        math.PagesAfterDecode(r.policy, n, r.max_tokens)});
  }

  // Unpressured: each request alone on an ample pool.
  std::vector<std::vector<int32_t>> alone(reqs.size());
  {
    EngineOptions opt;
    opt.kv_cache_bytes = 4096 * PageBytes();
    opt.enable_prefix_caching = !tc.shared_prefix;
    auto engine = *Engine::Create(*model_, opt);
    for (size_t i = 0; i < reqs.size(); ++i) {
      auto sink = std::make_shared<Sink>(engine.get(), -1);
      ASSERT_TRUE(
          engine->Submit({reqs[i].prompt, Greedy(reqs[i].max_tokens), 0, sink, reqs[i].policy})
              .ok());
      ASSERT_TRUE(sink->WaitFor(std::chrono::seconds(60)).has_value());
      alone[i] = sink->tokens();
    }
    EXPECT_EQ(engine->GetStats().num_preemptions, 0);
  }

  // Pressured: all at once on a pool that holds the biggest request and
  // little more.
  EngineOptions opt;
  opt.kv_cache_bytes = (biggest + 6) * PageBytes();
  opt.max_num_seqs = 8;
  opt.max_num_batched_tokens = 96;
  auto engine = *Engine::Create(*model_, opt);
  const int32_t total_pages = engine->GetStats().kv_pages_total;
  for (Req& r : reqs) {
    r.sink = std::make_shared<Sink>(engine.get(), r.cancel_after);
    auto h = engine->Submit(
        {r.prompt, Greedy(r.max_tokens), static_cast<int32_t>(rng() % 2), r.sink, r.policy});
    ASSERT_TRUE(h.ok()) << h.status();
    r.sink->set_handle(*h);
  }
  int64_t step_bound = static_cast<int64_t>(reqs.size());
  int evicting_hits = 0;  // evicting requests that read a cached prefix
  for (size_t i = 0; i < reqs.size(); ++i) {
    const Req& r = reqs[i];
    const std::optional<RequestSummary> s = r.sink->WaitFor(std::chrono::seconds(120));
    ASSERT_TRUE(s.has_value()) << "request " << i << " never finished (stuck)";
    // Each attempt (the first and one per preemption) takes at most L prefill
    // steps, its replays and its decodes; every step advances some attempt.
    step_bound += (1 + s->num_preemptions) * (kLayers + 2 * r.max_tokens);
    if (r.policy.budget > 0 && s->cached_tokens > 0) ++evicting_hits;
    switch (s->reason) {
      case FinishReason::kLength:
        EXPECT_EQ(r.sink->tokens(), alone[i])
            << "request " << i << " preemptions " << s->num_preemptions;
        break;
      case FinishReason::kCancelled:
        EXPECT_GE(r.cancel_after, 0) << "request " << i << " was cancelled unasked";
        break;
      default:
        ADD_FAILURE() << "request " << i << " failed: " << s->error;
    }
  }
  const EngineStats st = engine->GetStats();
  EXPECT_EQ(st.kv_pages_used, 0) << "pages leaked";
  EXPECT_EQ(st.kv_pages_total, total_pages);
  EXPECT_EQ(st.num_running, 0);
  EXPECT_EQ(st.num_waiting, 0);
  EXPECT_GT(st.num_preemptions, 0) << "the pool was meant to force preemptions";
  EXPECT_LE(st.steps, step_bound);
  if (tc.shared_prefix) {
    EXPECT_GT(st.prefix_cache_hit_tokens, 0) << "the shared prefixes were meant to hit";
    EXPECT_GT(st.prefix_cache_blocks, 0);
    if (policy.budget > 0) {
      EXPECT_GT(evicting_hits, 0) << "no evicting request read the cache";
    }
  }
  engine->Shutdown(0);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(reqs[i].sink->finishes(), 1) << i;
}

INSTANTIATE_TEST_SUITE_P(
    EveryPolicy, PreemptionStressTest,
    ::testing::Values(Case{"full", 0}, Case{"restkv", 16}, Case{"restkv", 48}, Case{"snapkv", 16},
                      Case{"snapkv", 48}, Case{"streamingllm", 16}, Case{"streamingllm", 48},
                      Case{"tova", 16}, Case{"tova", 48}, Case{"pyramidkv", 16},
                      Case{"pyramidkv", 48}, Case{"h2o", 16}, Case{"h2o", 48},
                      // Recompute after preemption at 16 and 8 bits: the same
                      // rounding of the same K/V rebuilds the same cache.
                      Case{"full", 0, kernels::KvDtype::kF16},
                      Case{"restkv", 16, kernels::KvDtype::kBf16},
                      Case{"snapkv", 48, kernels::KvDtype::kQ8_0},
                      Case{"h2o", 16, kernels::KvDtype::kQ8_0},
                      // Prefix cache on (pressured) against off (alone).
                      Case{"full", 0, kernels::KvDtype::kF32, true},
                      Case{"full", 0, kernels::KvDtype::kF16, true},
                      Case{"restkv", 16, kernels::KvDtype::kF32, true},
                      Case{"snapkv", 48, kernels::KvDtype::kF32, true}),
    [](const ::testing::TestParamInfo<Case>& info) {
      std::string name = std::string(info.param.policy) + "_" + std::to_string(info.param.budget);
      if (info.param.shared_prefix) name += "_prefix_cache";
      if (info.param.dtype != kernels::KvDtype::kF32) {
        // Two appends: GCC 12 warns falsely (-Wrestrict) on "_" + std::string.
        name += "_";
        name += kernels::KvDtypeName(info.param.dtype);
      }
      return name;
    });

}  // namespace
}  // namespace restkv::engine
