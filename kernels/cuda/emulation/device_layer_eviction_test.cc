// DeviceLayerEviction (all eviction kernels, as LayerEvictionOps runs them on
// a GPU) on the host emulation against the CPU reference SelectTokens
// (engine/eviction/token_selection.h), with plans from MakeEvictionPlan:
// - the spec's worked case (engine/eviction/testdata.h, restkv.md §7.2)
//   keeps the same tokens;
// - random layers for every policy on GQA 1 / 4 / 8, pages 1 / 8 / 16,
//   head_dim 64 / 128, odd lengths keep the same sets (mean Jaccard >= 0.999
//   over all KV heads; in practice identical), and the compacted pages hold
//   exactly the kept tokens' K/V.
#include "kernels/cuda/device_layer_eviction.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/eviction/eviction_plan.h"
#include "engine/eviction/kept_overlap.h"
#include "engine/eviction/testdata.h"
#include "engine/eviction/token_selection.h"
#include "engine/eviction/wo_factor.h"
#include "gtest/gtest.h"
#include "kernels/cuda/emulation/eviction_testutil.h"
#include "kernels/cuda/emulation/host_memory_ops.h"

namespace restkv::kernels::cuda {
namespace {

using engine::Jaccard;
using engine::KvPolicyConfig;
using engine::KvPolicyKind;
using testing::LayerShape;
using testing::RandomLayer;

struct Outcome {
  std::vector<std::vector<int32_t>> cpu, device;
};

// Runs one layer both ways; checks the compacted pages against the device's
// own kept lists.
Outcome RunBoth(const KvPolicyConfig& policy, RandomLayer& layer, const std::vector<float>& factor,
                int32_t layer_index = 0, int32_t num_layers = 1) {
  const LayerShape& s = layer.shape;
  engine::LayerScoringInput in;
  in.num_tokens = s.num_tokens;
  in.num_heads = s.heads;
  in.num_kv_heads = s.kv_heads;
  in.head_dim = s.head_dim;
  in.num_queries = std::max(1, engine::ScoringWindow(policy, s.num_tokens));
  in.q_window = layer.LastQueries(in.num_queries);
  in.k = layer.k.data();
  in.v = layer.v.data();
  const bool wo = engine::NeedsWoFactor(policy);
  if (wo) in.wo_factor = factor.data();
  std::vector<float> h2o;
  if (engine::NeedsH2oScores(policy)) {
    h2o.resize(static_cast<size_t>(s.heads) * s.num_tokens);
    engine::H2oReferenceScores(layer.q_all.data(), layer.k.data(), s.num_tokens, s.heads,
                               s.kv_heads, s.head_dim, h2o.data());
    in.h2o_scores = h2o.data();
  }
  Outcome out;
  out.cpu = engine::SelectTokens(policy, layer_index, num_layers, in, nullptr);

  const auto plan = engine::MakeEvictionPlan(policy, layer_index, num_layers, s.num_tokens);
  EXPECT_TRUE(plan.has_value());
  if (!plan.has_value()) return out;
  EvictionLayerView view;
  view.num_tokens = s.num_tokens;
  view.num_heads = s.heads;
  view.num_kv_heads = s.kv_heads;
  view.head_dim = s.head_dim;
  view.block_size = s.block_size;
  view.pages = layer.page_ptrs.data();
  view.dtype = layer.dtype;
  view.q_window = in.q_window;
  view.num_queries = in.num_queries;
  view.q_all = layer.q_all.data();
  view.wo_factor = wo ? factor.data() : nullptr;
  emulation::HostMemoryOps memory;
  DeviceLayerEviction ops(memory, nullptr);
  const RandomLayer before = layer;
  const absl::Status st = ops.EvictLayer(*plan, view);
  EXPECT_TRUE(st.ok()) << st;
  if (!st.ok()) return out;
  EXPECT_TRUE(ops.LastKept(&out.device).ok());
  // Only the small tables went over, never a page's worth per token: the
  // kept lists, and under AdaKV the reduced scores [Hkv][M].
  const std::vector<int32_t>& lengths = ops.LastLengths();
  EXPECT_EQ(lengths.size(), static_cast<size_t>(s.kv_heads));
  const bool shared =
      plan->score == EvictionScore::kPositions || plan->score == EvictionScore::kLastQueryMean;
  const size_t longest = *std::max_element(lengths.begin(), lengths.end());
  EXPECT_EQ(
      memory.downloaded_bytes(),
      sizeof(int32_t) * (shared ? 1 : s.kv_heads) * longest +
          (plan->head_counts ? sizeof(float) * s.kv_heads * (s.num_tokens - plan->window) : 0));
  for (int32_t h = 0; h < s.kv_heads && h < static_cast<int32_t>(out.device.size()); ++h) {
    EXPECT_EQ(static_cast<size_t>(lengths[h]), out.device[h].size()) << "head " << h;
  }
  for (int32_t h = 0; h < s.kv_heads && h < static_cast<int32_t>(out.device.size()); ++h) {
    for (size_t i = 0; i < out.device[h].size(); ++i) {
      EXPECT_EQ(layer.Slot(static_cast<int32_t>(i), h), before.Slot(out.device[h][i], h))
          << "head " << h << " slot " << i;
    }
  }
  return out;
}

KvPolicyConfig Policy(KvPolicyKind kind, int32_t budget, int32_t window) {
  KvPolicyConfig c;
  c.kind = kind;
  c.budget = budget;
  c.window = window;
  return c;
}

// §7.2: one head, N = 12, w = 4, B = 8, d = 2 (restkv.md's worked numbers).
TEST(DeviceLayerEvictionTest, WorkedExampleKeepsTheSpecsTokens) {
  namespace td = engine::testdata;
  const std::vector<float> factor = engine::ComputeWoFactor(td::kWo.data(), 3, 1, 2);
  RandomLayer layer({td::kN, 1, 1, td::kD, 4}, 1);
  layer.k = td::kKeys;
  layer.v = td::kValues;
  layer.q_all.assign(static_cast<size_t>(td::kN - td::kW) * td::kD, 0.0f);
  layer.q_all.insert(layer.q_all.end(), td::kQueries.begin(), td::kQueries.end());
  layer.Repage();
  for (float beta : {2000.0f, 1.0f, 0.5f}) {
    for (bool use_wo : {true, false}) {
      SCOPED_TRACE(absl::StrFormat("beta %g use_wo %d", beta, use_wo));
      KvPolicyConfig policy = Policy(KvPolicyKind::kRestKv, 8, td::kW);
      policy.beta = beta;
      policy.use_wo = use_wo;
      RandomLayer copy = layer;
      const Outcome o = RunBoth(policy, copy, factor);
      ASSERT_EQ(o.device.size(), 1u);
      EXPECT_EQ(o.device, o.cpu);
    }
  }
  // §7.2 prints the smoothed scores at beta = 2000; the top 4 candidates
  // (0.316722, 0.295696, 0.280621, 0.275812) are 7, 6, 4, 5, plus the window.
  RandomLayer copy = layer;
  const Outcome o = RunBoth(Policy(KvPolicyKind::kRestKv, 8, td::kW), copy, factor);
  EXPECT_EQ(o.device, (std::vector<std::vector<int32_t>>{{4, 5, 6, 7, 8, 9, 10, 11}}));
  // (H2O needs every query; the worked case has only the window's.)
  for (KvPolicyKind kind :
       {KvPolicyKind::kSnapKv, KvPolicyKind::kTova, KvPolicyKind::kStreamingLlm}) {
    RandomLayer c = layer;
    const Outcome b = RunBoth(Policy(kind, 8, td::kW), c, factor);
    EXPECT_EQ(b.device, b.cpu) << engine::KvPolicyName(kind);
  }
}

struct Case {
  LayerShape shape;
  int32_t budget;
};

// Small enough for the emulation (one OS thread per CUDA thread).
const Case kCases[] = {
    {{77, 2, 2, 64, 1}, 24},    // MHA, page size 1
    {{69, 4, 1, 64, 8}, 20},    // GQA 4
    {{53, 8, 1, 128, 16}, 18},  // GQA 8, d 128
    {{45, 1, 1, 128, 16}, 14},
};

TEST(DeviceLayerEvictionTest, RandomLayersKeepTheCpusSets) {
  double jaccard_sum = 0.0;
  int64_t heads_compared = 0, identical = 0;
  std::vector<KvPolicyConfig> policies;
  for (KvPolicyKind kind : {KvPolicyKind::kRestKv, KvPolicyKind::kSnapKv, KvPolicyKind::kPyramidKv,
                            KvPolicyKind::kTova, KvPolicyKind::kH2o, KvPolicyKind::kStreamingLlm}) {
    policies.push_back(Policy(kind, 0, 8));
  }
  // ReST-KV knobs the kernels implement: no W_O, max reduction, tau, mean,
  // avg / max / no pooling, a small beta (wide, shifted boxes).
  KvPolicyConfig k = Policy(KvPolicyKind::kRestKv, 0, 8);
  k.use_wo = false;
  k.gqa_reduce = engine::GqaReduce::kMax;
  policies.push_back(k);
  k = Policy(KvPolicyKind::kRestKv, 0, 8);
  k.tau = 2.0f;
  k.temporal = engine::TemporalMode::kMean;
  k.beta = 3.0f;
  policies.push_back(k);
  k = Policy(KvPolicyKind::kRestKv, 0, 8);
  k.pooling = engine::PoolingMode::kAvg;
  policies.push_back(k);
  k = Policy(KvPolicyKind::kSnapKv, 0, 8);
  k.pooling = engine::PoolingMode::kMax;
  policies.push_back(k);
  k = Policy(KvPolicyKind::kSnapKv, 0, 8);
  k.pooling = engine::PoolingMode::kNone;
  policies.push_back(k);

  uint32_t seed = 100;
  for (const Case& c : kCases) {
    std::vector<float> wo(static_cast<size_t>(64) * c.shape.heads * c.shape.head_dim);
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist;
    for (float& x : wo) x = dist(rng);
    const std::vector<float> factor =
        engine::ComputeWoFactor(wo.data(), 64, c.shape.heads, c.shape.head_dim);
    for (KvPolicyConfig policy : policies) {
      policy.budget = c.budget;
      ASSERT_TRUE(policy.Validate().ok()) << policy.Validate();
      RandomLayer layer(c.shape, ++seed);
      // PyramidKV's schedule differs by layer: a middle layer of four.
      const int32_t layer_index = policy.kind == KvPolicyKind::kPyramidKv ? 1 : 0;
      const int32_t num_layers = policy.kind == KvPolicyKind::kPyramidKv ? 4 : 1;
      const Outcome o = RunBoth(policy, layer, factor, layer_index, num_layers);
      ASSERT_EQ(o.device.size(), o.cpu.size());
      for (size_t h = 0; h < o.cpu.size(); ++h) {
        const double j = Jaccard(o.cpu[h], o.device[h]);
        jaccard_sum += j;
        ++heads_compared;
        identical += o.cpu[h] == o.device[h];
        EXPECT_EQ(o.cpu[h].size(), o.device[h].size());
        if (j < 0.9) {
          ADD_FAILURE() << engine::KvPolicyDebugString(policy) << " N=" << c.shape.num_tokens
                        << " head " << h << ": Jaccard " << j;
        }
      }
    }
  }
  const double mean = jaccard_sum / heads_compared;
  std::printf("device vs CPU kept sets: %lld KV heads, %lld identical, mean Jaccard %.6f\n",
              static_cast<long long>(heads_compared), static_cast<long long>(identical), mean);
  EXPECT_GE(mean, 0.999);
}

// AdaKV (adaptive=adakv): the host's head-wise counts over the device's
// reduced scores; every KV head keeps the CPU's own count and set, and the
// counts differ between heads (else the case would not test them).
TEST(DeviceLayerEvictionTest, AdaKvKeepsTheCpusHeadWiseSets) {
  const LayerShape shapes[] = {
      {96, 8, 4, 64, 8},    // GQA 2, four KV heads
      {61, 8, 8, 128, 16},  // MHA, eight heads, d 128
  };
  int64_t uneven_layers = 0;
  uint32_t seed = 500;
  for (const LayerShape& shape : shapes) {
    std::vector<float> wo(static_cast<size_t>(64) * shape.heads * shape.head_dim);
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist;
    for (float& x : wo) x = dist(rng);
    const std::vector<float> factor =
        engine::ComputeWoFactor(wo.data(), 64, shape.heads, shape.head_dim);
    for (KvPolicyKind kind : {KvPolicyKind::kRestKv, KvPolicyKind::kSnapKv,
                              KvPolicyKind::kPyramidKv, KvPolicyKind::kH2o}) {
      for (bool normalize : {true, false}) {
        if (!normalize && kind != KvPolicyKind::kRestKv) continue;
        KvPolicyConfig policy = Policy(kind, 24, 8);
        policy.adaptive = engine::AdaptiveBudget::kAdaKv;
        policy.adakv_normalize = normalize;
        ASSERT_TRUE(policy.Validate().ok()) << policy.Validate();
        SCOPED_TRACE(engine::KvPolicyDebugString(policy) +
                     " N=" + std::to_string(shape.num_tokens));
        const int32_t layer_index = kind == KvPolicyKind::kPyramidKv ? 1 : 0;
        const int32_t num_layers = kind == KvPolicyKind::kPyramidKv ? 4 : 1;
        const auto plan =
            engine::MakeEvictionPlan(policy, layer_index, num_layers, shape.num_tokens);
        ASSERT_TRUE(plan.has_value() && plan->head_counts);
        RandomLayer layer(shape, ++seed, 3.0f);
        const Outcome o = RunBoth(policy, layer, factor, layer_index, num_layers);
        ASSERT_EQ(o.device.size(), o.cpu.size());
        for (size_t h = 0; h < o.cpu.size(); ++h) {
          EXPECT_EQ(o.device[h], o.cpu[h]) << "KV head " << h;
        }
        bool uneven = false;
        for (const auto& head : o.device) uneven |= head.size() != o.device[0].size();
        uneven_layers += uneven;
      }
    }
  }
  EXPECT_GT(uneven_layers, 0) << "no case gave its heads different counts";
  std::printf("AdaKV device vs CPU: %lld layers with uneven head counts\n",
              static_cast<long long>(uneven_layers));
}

// Pages of every stored dtype: the kernels widen the stored elements to f32
// exactly as the CPU's DecodeKvRow does (RandomLayer's k / v are those
// values), so the kept sets match the CPU's on the same pages, and
// compaction moves the stored bytes and q8_0 scales unchanged (RunBoth).
TEST(DeviceLayerEvictionTest, EveryKvDtypeKeepsTheCpusSets) {
  const LayerShape shape{69, 4, 1, 64, 8};
  std::vector<float> wo(static_cast<size_t>(64) * shape.heads * shape.head_dim);
  std::mt19937 rng(3);
  std::normal_distribution<float> dist;
  for (float& x : wo) x = dist(rng);
  const std::vector<float> factor =
      engine::ComputeWoFactor(wo.data(), 64, shape.heads, shape.head_dim);
  for (KvDtype dtype : {KvDtype::kF16, KvDtype::kBf16, KvDtype::kQ8_0}) {
    // ReST-KV reads both K (window attention) and V (reconstruction).
    for (KvPolicyKind kind : {KvPolicyKind::kRestKv}) {
      SCOPED_TRACE(absl::StrFormat("%s %s", KvDtypeName(dtype), engine::KvPolicyName(kind)));
      RandomLayer layer(shape, 7, 2.0f, dtype);
      const Outcome o = RunBoth(Policy(kind, 20, 8), layer, factor);
      ASSERT_EQ(o.device.size(), o.cpu.size());
      for (size_t h = 0; h < o.cpu.size(); ++h) EXPECT_GE(Jaccard(o.cpu[h], o.device[h]), 0.9);
    }
  }
}

// A layer that keeps a prefix (PyramidKV's early layers can keep all N):
// nothing moves, and LastKept still reports the kept positions.
TEST(DeviceLayerEvictionTest, KeepingAPrefixMovesNothing) {
  RandomLayer layer({40, 2, 2, 64, 8}, 4);
  const RandomLayer before = layer;
  emulation::HostMemoryOps memory;
  DeviceLayerEviction ops(memory, nullptr);
  EvictionLayerView view;
  view.num_tokens = 40;
  view.num_heads = 2;
  view.num_kv_heads = 2;
  view.head_dim = 64;
  view.block_size = 8;
  view.pages = layer.page_ptrs.data();
  EvictionPlan plan;
  plan.positions.resize(40);
  std::iota(plan.positions.begin(), plan.positions.end(), 0);
  ASSERT_TRUE(ops.EvictLayer(plan, view).ok());
  EXPECT_EQ(layer.pages, before.pages);
  std::vector<std::vector<int32_t>> kept;
  ASSERT_TRUE(ops.LastKept(&kept).ok());
  EXPECT_EQ(kept, std::vector<std::vector<int32_t>>(2, plan.positions));
  // A non-prefix list of the same length still compacts.
  plan.positions.resize(20);
  for (int32_t i = 0; i < 20; ++i) plan.positions[i] = 2 * i;
  ASSERT_TRUE(ops.EvictLayer(plan, view).ok());
  EXPECT_EQ(layer.Slot(1, 1), before.Slot(2, 1));
}

TEST(DeviceLayerEvictionTest, RejectsWhatTheKernelsDoNotSupport) {
  RandomLayer layer({40, 2, 2, 64, 8}, 3);
  emulation::HostMemoryOps memory;
  DeviceLayerEviction ops(memory, nullptr);
  EvictionLayerView view;
  view.num_tokens = 40;
  view.num_heads = 2;
  view.num_kv_heads = 2;
  view.head_dim = 300;
  view.block_size = 8;
  view.pages = layer.page_ptrs.data();
  view.dtype = layer.dtype;
  view.q_window = layer.LastQueries(8);
  view.num_queries = 8;
  EvictionPlan plan;
  plan.score = EvictionScore::kWindowSum;
  plan.window = 8;
  plan.keep = 4;
  plan.row_weights.assign(8, 1.0f);
  EXPECT_EQ(ops.EvictLayer(plan, view).code(), absl::StatusCode::kInvalidArgument);
  view.head_dim = 64;
  plan.keep = 33;  // more than the 32 candidates
  EXPECT_EQ(ops.EvictLayer(plan, view).code(), absl::StatusCode::kInvalidArgument);
  plan.keep = 4;
  view.num_queries = 4;  // fewer queries than window rows
  EXPECT_EQ(ops.EvictLayer(plan, view).code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::vector<int32_t>> kept;
  EXPECT_EQ(ops.LastKept(&kept).code(), absl::StatusCode::kFailedPrecondition);
  // Head-wise counts need candidate scores, and a cap the layer can hold.
  plan.head_counts = [](const float*, int32_t heads, int64_t) {
    return std::vector<int32_t>(heads, 1);
  };
  view.num_queries = 8;
  plan.head_cap = 40;
  EXPECT_EQ(ops.EvictLayer(plan, view).code(), absl::StatusCode::kInvalidArgument);
  plan.head_cap = 8;
  plan.score = EvictionScore::kLastQueryMean;
  EXPECT_EQ(ops.EvictLayer(plan, view).code(), absl::StatusCode::kInvalidArgument);
  // A count function that breaks its contract is an error, not a bad read.
  plan.score = EvictionScore::kWindowSum;
  plan.head_counts = [](const float*, int32_t heads, int64_t) {
    return std::vector<int32_t>(heads, 9);  // over the cap
  };
  EXPECT_EQ(ops.EvictLayer(plan, view).code(), absl::StatusCode::kInternal);
  plan.head_counts = [](const float*, int32_t, int64_t) { return std::vector<int32_t>(1, 2); };
  EXPECT_EQ(ops.EvictLayer(plan, view).code(), absl::StatusCode::kInternal);
  plan.head_counts = nullptr;
  // metric=before has no kernels: the plan says so and the host scores.
  KvPolicyConfig before = Policy(KvPolicyKind::kRestKv, 16, 8);
  before.metric = engine::MetricMode::kBefore;
  EXPECT_FALSE(engine::MakeEvictionPlan(before, 0, 1, 40).has_value());
}

}  // namespace
}  // namespace restkv::kernels::cuda
