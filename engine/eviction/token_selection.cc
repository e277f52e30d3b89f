#include "engine/eviction/token_selection.h"

#include <algorithm>
#include <numeric>

#include "common/check.h"
#include "engine/eviction/adakv.h"
#include "engine/eviction/pooling.h"
#include "engine/eviction/scores.h"
#include "engine/eviction/select.h"

namespace restkv::engine {
namespace {

// Per-thread buffers, sized by the first head a thread scores.
struct HeadScratch {
  std::vector<float> probs;  // [w][N] window attention
  std::vector<float> raw;    // [M] unsmoothed scores
  DriftScratch drift;
  ScoringScratch scoring;
};

// Window geometry shared by all heads of the layer.
struct Geometry {
  int32_t window = 0;      // w (effective)
  int32_t candidates = 0;  // M = N - w
  int32_t keep = 0;        // K_l candidates kept (per head before AdaKV)
  bool adakv = false;      // head-wise counts (AdaKvCounts), each <= head_cap
  int32_t head_cap = 0;
};

// Runs fn(begin, end) over [0, n) on the pool, or inline without one.
template <typename Fn>
void ForRange(ThreadPool* pool, int64_t n, const Fn& fn) {
  if (pool == nullptr || n <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  pool->ParallelFor(n, [&](int64_t b, int64_t e, int) { fn(b, e); });
}

std::vector<std::vector<int32_t>> SameForAllHeads(int32_t num_kv_heads,
                                                  const std::vector<int32_t>& keep) {
  return std::vector<std::vector<int32_t>>(num_kv_heads, keep);
}

// Smoothed scores S_h[0..M) of query head h for the window-attention policies
// (snapkv, pyramidkv, restkv) and h2o.
void ScoreHead(const KvPolicyConfig& config, PoolingMode pooling, const Geometry& geo,
               const LayerScoringInput& in, int32_t h, HeadScratch* scratch, float* out) {
  const int64_t n = in.num_tokens;
  const int64_t m = geo.candidates;
  if (config.kind == KvPolicyKind::kH2o) {
    const float* src = in.h2o_scores + h * n;
    std::copy(src, src + m, out);
    return;
  }
  const int32_t d = in.head_dim;
  const int32_t w = geo.window;
  const int64_t g = h / (in.num_heads / in.num_kv_heads);
  const int64_t q_stride = static_cast<int64_t>(in.num_heads) * d;
  const float* q = in.q_window + (in.num_queries - w) * q_stride + static_cast<int64_t>(h) * d;
  const float* k = in.k + g * n * d;
  const float* v = in.v + g * n * d;
  if (scratch->probs.size() < static_cast<size_t>(w * n)) scratch->probs.resize(w * n);
  if (scratch->raw.size() < static_cast<size_t>(m)) scratch->raw.resize(m);
  float* probs = scratch->probs.data();
  float* raw = scratch->raw.data();
  WindowAttention(q, q_stride, k, w, in.num_tokens, d, probs);

  if (config.kind == KvPolicyKind::kRestKv) {
    IndicatorParams params;
    params.metric = config.metric;
    params.temporal = config.temporal;
    params.alpha = config.alpha;
    params.use_norm = config.use_norm;
    params.tau = config.tau;
    const float* r = config.use_wo ? in.wo_factor + static_cast<int64_t>(h) * d * d : nullptr;
    ReconstructionScores(params, probs, w, in.num_tokens, v, d, r, &scratch->scoring, raw);
  } else {
    // SnapKV: plain sum over the window rows (§5).
    const std::vector<float> ones(w, 1.0f);
    AggregateRows(ones.data(), probs, w, n, m, raw);
  }

  switch (pooling) {
    case PoolingMode::kAdaptive: {
      const double drift = WindowDrift(probs, w, in.num_tokens, geo.keep, &scratch->drift);
      const AdaptiveKernel kernel = AdaptiveKernelFor(drift, config.beta, config.kernel_size);
      ShiftedReplicateBox(raw, m, kernel.size, kernel.shift, out);
      break;
    }
    case PoolingMode::kAvg:
      AvgPoolZeroPad(raw, m, config.kernel_size, out);
      break;
    case PoolingMode::kMax:
      MaxPool(raw, m, config.kernel_size, out);
      break;
    case PoolingMode::kDefault:
    case PoolingMode::kNone:
      std::copy(raw, raw + m, out);
      break;
  }
}

std::vector<std::vector<int32_t>> SelectCandidates(const KvPolicyConfig& config,
                                                   const Geometry& geo, const LayerScoringInput& in,
                                                   ThreadPool* pool) {
  const int32_t num_heads = in.num_heads;
  const int32_t group = num_heads / in.num_kv_heads;
  const int64_t m = geo.candidates;
  const PoolingMode pooling = EffectivePooling(config);
  if (config.kind == KvPolicyKind::kH2o) {
    RESTKV_CHECK(in.h2o_scores != nullptr) << "h2o needs h2o_scores";
  } else {
    RESTKV_CHECK(in.q_window != nullptr && in.k != nullptr && in.v != nullptr);
    RESTKV_CHECK_GE(in.num_queries, geo.window);
    RESTKV_CHECK(!NeedsWoFactor(config) || in.wo_factor != nullptr)
        << "restkv use_wo needs wo_factor";
  }
  std::vector<float> head_scores(static_cast<size_t>(num_heads) * m);  // [H][M]
  ForRange(pool, num_heads, [&](int64_t h0, int64_t h1) {
    HeadScratch scratch;
    for (int64_t h = h0; h < h1; ++h) {
      ScoreHead(config, pooling, geo, in, static_cast<int32_t>(h), &scratch,
                head_scores.data() + h * m);
    }
  });
  std::vector<std::vector<int32_t>> keep(in.num_kv_heads);
  if (!geo.adakv) {
    ForRange(pool, in.num_kv_heads, [&](int64_t g0, int64_t g1) {
      std::vector<float> reduced(m);
      std::vector<float> scratch;
      for (int64_t g = g0; g < g1; ++g) {
        ReduceGroupScores(config.gqa_reduce, head_scores.data() + g * group * m, group, m, m,
                          reduced.data());
        keep[g] = KeepTopCandidates(reduced.data(), in.num_tokens, geo.window, geo.keep, &scratch);
      }
    });
    return keep;
  }
  // AdaKV: every KV head's reduced scores first, then the head-wise counts.
  std::vector<float> reduced(static_cast<size_t>(in.num_kv_heads) * m);
  for (int64_t g = 0; g < in.num_kv_heads; ++g) {
    ReduceGroupScores(config.gqa_reduce, head_scores.data() + g * group * m, group, m, m,
                      reduced.data() + g * m);
  }
  const std::vector<int32_t> counts =
      AdaKvCounts(reduced.data(), in.num_kv_heads, m, static_cast<int32_t>(m), geo.keep,
                  config.adakv_normalize, geo.head_cap);
  std::vector<float> scratch;
  for (int64_t g = 0; g < in.num_kv_heads; ++g) {
    keep[g] =
        KeepTopCandidates(reduced.data() + g * m, in.num_tokens, geo.window, counts[g], &scratch);
  }
  return keep;
}

// TOVA: the last prompt query's attention averaged over all query heads.
std::vector<int32_t> SelectTova(int32_t budget, const LayerScoringInput& in, ThreadPool* pool) {
  RESTKV_CHECK(in.q_window != nullptr && in.k != nullptr && in.num_queries >= 1);
  const int64_t n = in.num_tokens;
  const int32_t d = in.head_dim;
  const int32_t group = in.num_heads / in.num_kv_heads;
  const int64_t q_stride = static_cast<int64_t>(in.num_heads) * d;
  std::vector<float> probs(static_cast<size_t>(in.num_heads) * n);  // [H][N]
  ForRange(pool, in.num_heads, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      const float* q = in.q_window + (in.num_queries - 1) * q_stride + h * d;
      WindowAttention(q, q_stride, in.k + (h / group) * n * d, 1, in.num_tokens, d,
                      probs.data() + h * n);
    }
  });
  std::vector<float> mean(n);
  ReduceGroupScores(GqaReduce::kMean, probs.data(), in.num_heads, n, n, mean.data());
  std::vector<float> scratch;
  std::vector<int32_t> keep;
  TopKIndices(mean.data(), n, budget, &scratch, &keep);
  return keep;
}

}  // namespace

std::vector<std::vector<int32_t>> SelectTokens(const KvPolicyConfig& config, int32_t layer,
                                               int32_t num_layers, const LayerScoringInput& in,
                                               ThreadPool* pool) {
  RESTKV_CHECK(in.num_heads >= 1 && in.num_kv_heads >= 1 && in.num_heads % in.num_kv_heads == 0)
      << in.num_heads << " " << in.num_kv_heads;
  RESTKV_CHECK_GE(in.num_tokens, 0);
  const int32_t n = in.num_tokens;
  const int32_t kept = KeptTokensForLayer(config, layer, num_layers, n);
  const bool adakv = UsesAdaKv(config, layer, num_layers, n);
  if (kept >= n && !adakv) {
    std::vector<int32_t> all(n);
    std::iota(all.begin(), all.end(), 0);
    return SameForAllHeads(in.num_kv_heads, all);
  }
  switch (config.kind) {
    case KvPolicyKind::kStreamingLlm:
      return SameForAllHeads(in.num_kv_heads,
                             StreamingLlmKeep(n, config.budget, config.sink_tokens));
    case KvPolicyKind::kTova:
      return SameForAllHeads(in.num_kv_heads, SelectTova(config.budget, in, pool));
    case KvPolicyKind::kLaCache:
      return SameForAllHeads(
          in.num_kv_heads, LaCacheKeep(n, config.budget, LadderShapeOf(config), layer, num_layers));
    case KvPolicyKind::kFull:
      RESTKV_CHECK(false) << "full never evicts";
      return {};
    case KvPolicyKind::kH2o:
    case KvPolicyKind::kSnapKv:
    case KvPolicyKind::kPyramidKv:
    case KvPolicyKind::kRestKv:
      break;
  }
  Geometry geo;
  geo.window = EffectiveWindow(config.budget, config.window);
  geo.candidates = n - geo.window;
  geo.keep = UniformCandidates(config, layer, num_layers, n);
  geo.adakv = adakv;
  geo.head_cap = kept - geo.window;
  if (geo.keep == 0) {
    // B < 4 (or a pyramid layer with nothing to spare): the window alone.
    std::vector<int32_t> window(geo.window);
    std::iota(window.begin(), window.end(), geo.candidates);
    return SameForAllHeads(in.num_kv_heads, window);
  }
  return SelectCandidates(config, geo, in, pool);
}

}  // namespace restkv::engine
