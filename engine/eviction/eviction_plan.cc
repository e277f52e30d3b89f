#include "engine/eviction/eviction_plan.h"

#include <numeric>

#include "common/check.h"
#include "engine/eviction/adakv.h"
#include "engine/eviction/scores.h"
#include "engine/eviction/select.h"

namespace restkv::engine {
namespace {

kernels::EvictionPlan Positions(std::vector<int32_t> positions) {
  kernels::EvictionPlan plan;
  plan.score = kernels::EvictionScore::kPositions;
  plan.positions = std::move(positions);
  return plan;
}

kernels::EvictionPooling KernelPooling(PoolingMode mode) {
  switch (mode) {
    case PoolingMode::kAdaptive:
      return kernels::EvictionPooling::kAdaptive;
    case PoolingMode::kAvg:
      return kernels::EvictionPooling::kAvgZeroPad;
    case PoolingMode::kMax:
      return kernels::EvictionPooling::kMax;
    case PoolingMode::kDefault:
    case PoolingMode::kNone:
      break;
  }
  return kernels::EvictionPooling::kNone;
}

}  // namespace

// Mirrors SelectTokens (token_selection.cc) branch for branch.
std::optional<kernels::EvictionPlan> MakeEvictionPlan(const KvPolicyConfig& config, int32_t layer,
                                                      int32_t num_layers, int32_t num_tokens) {
  const int32_t n = num_tokens;
  const int32_t kept = KeptTokensForLayer(config, layer, num_layers, n);
  const bool adakv = UsesAdaKv(config, layer, num_layers, n);
  if (kept >= n && !adakv) {
    std::vector<int32_t> all(n);
    std::iota(all.begin(), all.end(), 0);
    return Positions(std::move(all));
  }
  kernels::EvictionPlan plan;
  switch (config.kind) {
    case KvPolicyKind::kFull:
      RESTKV_CHECK(false) << "full never evicts";
      return std::nullopt;
    case KvPolicyKind::kStreamingLlm:
      return Positions(StreamingLlmKeep(n, config.budget, config.sink_tokens));
    case KvPolicyKind::kLaCache:
      return Positions(LaCacheKeep(n, config.budget, LadderShapeOf(config), layer, num_layers));
    case KvPolicyKind::kTova:
      plan.score = kernels::EvictionScore::kLastQueryMean;
      plan.keep = config.budget;
      return plan;
    case KvPolicyKind::kH2o:
      plan.score = kernels::EvictionScore::kAccumulatedAttention;
      break;
    case KvPolicyKind::kSnapKv:
    case KvPolicyKind::kPyramidKv:
      plan.score = kernels::EvictionScore::kWindowSum;
      break;
    case KvPolicyKind::kRestKv:
      if (config.metric != MetricMode::kAfter) return std::nullopt;
      plan.score = kernels::EvictionScore::kReconstruction;
      break;
  }
  plan.window = EffectiveWindow(config.budget, config.window);
  plan.keep = adakv ? UniformCandidates(config, layer, num_layers, n) : kept - plan.window;
  if (plan.keep == 0) {
    std::vector<int32_t> window(plan.window);
    std::iota(window.begin(), window.end(), n - plan.window);
    return Positions(std::move(window));
  }
  plan.reduce_max = config.gqa_reduce == GqaReduce::kMax;
  if (adakv) {
    // The same allocation SelectCandidates makes on the host.
    plan.head_cap = kept - plan.window;
    plan.head_counts = [b = plan.keep, cap = plan.head_cap, normalize = config.adakv_normalize](
                           const float* reduced, int32_t kv_heads, int64_t m) {
      return AdaKvCounts(reduced, kv_heads, m, static_cast<int32_t>(m), b, normalize, cap);
    };
  }
  if (plan.score == kernels::EvictionScore::kAccumulatedAttention) return plan;  // h2o never pools
  plan.row_weights.assign(plan.window, 1.0f);  // SnapKV: the plain sum
  if (plan.score == kernels::EvictionScore::kReconstruction) {
    TemporalWeights(config.temporal, config.alpha, plan.window, plan.row_weights.data());
    plan.tau = config.tau;
  }
  plan.pooling = KernelPooling(EffectivePooling(config));
  plan.kernel_size = config.kernel_size;
  plan.beta = config.beta;
  return plan;
}

}  // namespace restkv::engine
