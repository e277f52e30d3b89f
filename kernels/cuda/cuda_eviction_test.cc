// Eviction on a GPU: CudaBackend::layer_eviction() (DeviceLayerEviction, all
// eviction kernels) against the CPU reference SelectTokens on random layers
// held in device pages: the same kept sets per KV head (mean Jaccard >=
// 0.999; ties broken the same way) and compacted pages holding exactly the
// kept tokens. Skips without a device. The DISABLED_ long-prompt case
// (Llama-3-8B shape, 8k and 32k tokens) is run by scripts/gpu-check.sh and
// prints the device time per evicting layer.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/eviction/eviction_plan.h"
#include "engine/eviction/kept_overlap.h"
#include "engine/eviction/token_selection.h"
#include "engine/eviction/wo_factor.h"
#include "gtest/gtest.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/emulation/eviction_testutil.h"

namespace restkv::kernels::cuda {
namespace {

using engine::Jaccard;
using engine::KvPolicyConfig;
using engine::KvPolicyKind;
using testing::LayerShape;
using testing::RandomLayer;

class CudaEvictionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (DeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
    auto b = CudaBackend::Create({});
    ASSERT_TRUE(b.ok()) << b.status();
    backend_ = std::move(*b);
  }

  struct Stats {
    double jaccard_sum = 0;
    int64_t heads = 0, identical = 0;
    double device_ms = 0;
  };

  // One layer both ways; adds its heads to `stats`.
  void RunLayer(const KvPolicyConfig& policy, RandomLayer& layer, int32_t layer_index,
                int32_t num_layers, bool check_pages, Stats* stats) {
    const LayerShape& s = layer.shape;
    const int64_t page_floats = 2LL * s.kv_heads * s.block_size * s.head_dim;
    const int32_t num_pages = static_cast<int32_t>(layer.pages.size());
    auto slab = backend_->Allocate(sizeof(float) * page_floats * num_pages);
    ASSERT_TRUE(slab.ok()) << slab.status();
    std::vector<float*> pages;
    for (int32_t p = 0; p < num_pages; ++p) {
      pages.push_back((*slab)->floats() + p * page_floats);
      backend_->CopyFromHost(layer.pages[p].data(), pages.back(), page_floats);
    }
    std::vector<float> wo(static_cast<size_t>(4 * s.head_dim) * s.heads * s.head_dim);
    std::mt19937 rng(s.num_tokens);
    std::normal_distribution<float> dist;
    for (float& x : wo) x = dist(rng);
    const std::vector<float> factor = engine::ComputeWoFactor(wo.data(), 4 * s.head_dim, s.heads,
                                                              s.head_dim, backend_->host_pool());
    auto factor_dev = backend_->Allocate(sizeof(float) * factor.size());
    ASSERT_TRUE(factor_dev.ok());
    backend_->CopyFromHost(factor.data(), (*factor_dev)->floats(), factor.size());

    engine::LayerScoringInput in;
    in.num_tokens = s.num_tokens;
    in.num_heads = s.heads;
    in.num_kv_heads = s.kv_heads;
    in.head_dim = s.head_dim;
    in.num_queries = std::max(1, engine::ScoringWindow(policy, s.num_tokens));
    in.q_window = layer.LastQueries(in.num_queries);
    in.k = layer.k.data();
    in.v = layer.v.data();
    const bool use_wo = engine::NeedsWoFactor(policy);
    if (use_wo) in.wo_factor = factor.data();
    std::vector<float> h2o;
    if (engine::NeedsH2oScores(policy)) {
      h2o.resize(static_cast<size_t>(s.heads) * s.num_tokens);
      engine::H2oReferenceScores(layer.q_all.data(), layer.k.data(), s.num_tokens, s.heads,
                                 s.kv_heads, s.head_dim, h2o.data());
      in.h2o_scores = h2o.data();
    }
    const auto cpu =
        engine::SelectTokens(policy, layer_index, num_layers, in, backend_->host_pool());

    const auto plan = engine::MakeEvictionPlan(policy, layer_index, num_layers, s.num_tokens);
    ASSERT_TRUE(plan.has_value());
    EvictionLayerView view;
    view.num_tokens = s.num_tokens;
    view.num_heads = s.heads;
    view.num_kv_heads = s.kv_heads;
    view.head_dim = s.head_dim;
    view.block_size = s.block_size;
    view.pages = pages.data();
    view.q_window = in.q_window;
    view.num_queries = in.num_queries;
    view.q_all = layer.q_all.data();
    view.wo_factor = use_wo ? (*factor_dev)->floats() : nullptr;
    LayerEvictionOps* ops = backend_->layer_eviction();
    ASSERT_NE(ops, nullptr);
    backend_->Synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    const absl::Status st = ops->EvictLayer(*plan, view);
    backend_->Synchronize();
    stats->device_ms +=
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_TRUE(st.ok()) << st;
    ASSERT_TRUE(backend_->status().ok()) << backend_->status();
    std::vector<std::vector<int32_t>> device;
    ASSERT_TRUE(ops->LastKept(&device).ok());
    ASSERT_EQ(device.size(), cpu.size());
    for (size_t h = 0; h < cpu.size(); ++h) {
      ASSERT_EQ(device[h].size(), cpu[h].size());
      stats->jaccard_sum += Jaccard(cpu[h], device[h]);
      ++stats->heads;
      stats->identical += cpu[h] == device[h];
    }
    if (!check_pages) return;
    const int64_t half = page_floats / 2;
    std::vector<float> page(page_floats);
    size_t longest = 0;  // AdaKV: heads keep different counts
    for (const auto& head : device) longest = std::max(longest, head.size());
    for (int32_t p = 0; p * s.block_size < static_cast<int32_t>(longest); ++p) {
      backend_->CopyToHost(pages[p], page.data(), page.size());
      for (int32_t h = 0; h < s.kv_heads; ++h) {
        for (int32_t r = 0; r < s.block_size; ++r) {
          const int32_t slot = p * s.block_size + r;
          if (slot >= static_cast<int32_t>(device[h].size())) break;
          // The stored bytes of the K row, then the V row (f32 pages).
          const std::vector<uint8_t> want = layer.Slot(device[h][slot], h);
          const int64_t row_bytes = int64_t{s.head_dim} * sizeof(float);
          const uint8_t* k = reinterpret_cast<const uint8_t*>(
              page.data() + (int64_t{h} * s.block_size + r) * s.head_dim);
          const uint8_t* v = k + half * sizeof(float);
          ASSERT_TRUE(std::equal(k, k + row_bytes, want.begin())) << "K slot " << slot;
          ASSERT_TRUE(std::equal(v, v + row_bytes, want.begin() + row_bytes)) << "V slot " << slot;
        }
      }
    }
  }

  std::unique_ptr<CudaBackend> backend_;
};

KvPolicyConfig Policy(KvPolicyKind kind, int32_t budget, int32_t window) {
  KvPolicyConfig c;
  c.kind = kind;
  c.budget = budget;
  c.window = window;
  return c;
}

const KvPolicyKind kPolicies[] = {KvPolicyKind::kRestKv,    KvPolicyKind::kSnapKv,
                                  KvPolicyKind::kPyramidKv, KvPolicyKind::kTova,
                                  KvPolicyKind::kH2o,       KvPolicyKind::kStreamingLlm};

// The emulated tests' shapes, larger: GQA 1 / 4 / 8, pages 1 / 8 / 16,
// head_dim 64 / 128, odd lengths.
TEST_F(CudaEvictionTest, KeptSetsMatchTheCpu) {
  const struct {
    LayerShape shape;
    int32_t budget;
  } cases[] = {
      {{1023, 4, 4, 64, 1}, 256},
      {{2049, 16, 4, 128, 16}, 512},
      {{777, 8, 1, 128, 8}, 160},
      {{301, 2, 2, 64, 16}, 64},
  };
  Stats stats;
  uint32_t seed = 1;
  for (const auto& c : cases) {
    for (KvPolicyKind kind : kPolicies) {
      // The H2O reference is O(N^2 d H) in double on one core.
      if (kind == KvPolicyKind::kH2o && c.shape.num_tokens > 1100) continue;
      SCOPED_TRACE(std::string(engine::KvPolicyName(kind)) +
                   " N=" + std::to_string(c.shape.num_tokens));
      RandomLayer layer(c.shape, ++seed);
      const bool pyramid = kind == KvPolicyKind::kPyramidKv;
      RunLayer(Policy(kind, c.budget, 32), layer, pyramid ? 5 : 0, pyramid ? 16 : 1, true, &stats);
    }
    // Head-wise budgets (AdaKV) on the scoring policies.
    for (KvPolicyKind kind : {KvPolicyKind::kRestKv, KvPolicyKind::kSnapKv}) {
      SCOPED_TRACE(std::string(engine::KvPolicyName(kind)) +
                   "+adakv N=" + std::to_string(c.shape.num_tokens));
      RandomLayer layer(c.shape, ++seed);
      KvPolicyConfig policy = Policy(kind, c.budget, 32);
      policy.adaptive = engine::AdaptiveBudget::kAdaKv;
      RunLayer(policy, layer, 0, 1, true, &stats);
    }
  }
  std::printf("cuda eviction parity: %lld KV heads, %lld identical, mean Jaccard %.6f\n",
              static_cast<long long>(stats.heads), static_cast<long long>(stats.identical),
              stats.jaccard_sum / std::max<int64_t>(1, stats.heads));
  EXPECT_GE(stats.jaccard_sum / std::max<int64_t>(1, stats.heads), 0.999);
}

// One small layer per policy: the case scripts/gpu-check.sh runs under
// compute-sanitizer (memcheck, racecheck, synccheck).
TEST_F(CudaEvictionTest, SmallLayerEveryPolicy) {
  Stats stats;
  for (KvPolicyKind kind : kPolicies) {
    SCOPED_TRACE(std::string(engine::KvPolicyName(kind)));
    RandomLayer layer({77, 4, 2, 64, 8}, 3);
    const bool pyramid = kind == KvPolicyKind::kPyramidKv;
    RunLayer(Policy(kind, 24, 8), layer, pyramid ? 1 : 0, pyramid ? 4 : 1, true, &stats);
  }
  KvPolicyConfig adakv = Policy(KvPolicyKind::kRestKv, 24, 8);
  adakv.adaptive = engine::AdaptiveBudget::kAdaKv;
  RandomLayer layer({77, 4, 2, 64, 8}, 3);
  RunLayer(adakv, layer, 0, 1, true, &stats);
  EXPECT_GE(stats.jaccard_sum / std::max<int64_t>(1, stats.heads), 0.999);
}

// Llama-3-8B attention shape (H 32, Hkv 8, d 128, pages of 16) at 8k and 32k
// tokens, budget 2048: parity and the device time of one evicting layer.
TEST_F(CudaEvictionTest, DISABLED_LongPromptParityAndTime) {
  for (int32_t n : {8192, 32768}) {
    RandomLayer layer({n, 32, 8, 128, 16}, 7);  // RunLayer leaves the host copy as it was
    for (KvPolicyKind kind : {KvPolicyKind::kRestKv, KvPolicyKind::kSnapKv, KvPolicyKind::kTova}) {
      Stats stats;
      RunLayer(Policy(kind, 2048, 32), layer, 0, 1, false, &stats);
      std::printf("cuda eviction %s N=%d: %lld/%lld heads identical, mean Jaccard %.6f, %.1f ms\n",
                  std::string(engine::KvPolicyName(kind)).c_str(), n,
                  static_cast<long long>(stats.identical), static_cast<long long>(stats.heads),
                  stats.jaccard_sum / stats.heads, stats.device_ms);
      EXPECT_GE(stats.jaccard_sum / stats.heads, 0.999);
    }
  }
}

}  // namespace
}  // namespace restkv::kernels::cuda
