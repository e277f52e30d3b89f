// Every eviction kernel of eviction_launch.h on the host emulation against
// its CPU reference in engine/eviction/ (the launcher comments name them),
// on odd lengths, GQA ratios 1 / 4 / 8, page sizes 1 / 8 / 16 and head_dim
// 64 / 128, on f32 pages and (scoring, compaction) on f16 / bf16 / q8_0
// pages, whose references read the decoded stored values: scores differ
// only by summation order and libm (|got - ref| <= atol + rtol * |ref|,
// NaN fails); selections, pooling shapes, GQA reductions and compaction must
// be exact.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/eviction/pooling.h"
#include "engine/eviction/scores.h"
#include "engine/eviction/select.h"
#include "engine/eviction/wo_factor.h"
#include "gtest/gtest.h"
#include "kernels/cuda/emulation/eviction_testutil.h"
#include "kernels/cuda/eviction_launch.h"

namespace restkv::kernels::cuda {
namespace {

using testing::LayerShape;
using testing::RandomLayer;

void ExpectClose(const float* got, const float* ref, int64_t n, double atol, double rtol,
                 const std::string& what) {
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << what << ": NaN at " << i;
    ASSERT_LE(std::fabs(double{got[i]} - ref[i]), atol + rtol * std::fabs(ref[i]))
        << what << ": element " << i << " got " << got[i] << " want " << ref[i];
  }
}

std::string Name(const LayerShape& s) {
  return absl::StrFormat("N=%d H=%d Hkv=%d d=%d bs=%d", s.num_tokens, s.heads, s.kv_heads,
                         s.head_dim, s.block_size);
}

// GQA 1 / 4 / 8, pages 1 / 8 / 16, d 64 / 128, odd N.
const LayerShape kShapes[] = {
    {77, 2, 2, 64, 1},
    {131, 8, 2, 64, 8},
    {101, 8, 1, 128, 16},
    {67, 4, 4, 128, 8},
};
constexpr int32_t kWindow = 8;

// Window probabilities, the aggregated rows, obar and the reconstruction
// scores of every head, against the CPU scorer on contiguous copies.
void CheckWindowAttentionAndReconstruction(const LayerShape& s, KvDtype dtype) {
  {
    SCOPED_TRACE(Name(s) + " " + std::string(KvDtypeName(dtype)));
    RandomLayer layer(s, 11, 2.0f, dtype);
    const int32_t n = s.num_tokens, d = s.head_dim, w = kWindow, m = n - w;
    const int32_t group = s.heads / s.kv_heads;
    std::vector<float> wo(static_cast<size_t>(48) * s.heads * d);
    std::mt19937 rng(5);
    std::normal_distribution<float> dist;
    for (float& x : wo) x = dist(rng);
    const std::vector<float> r = engine::ComputeWoFactor(wo.data(), 48, s.heads, d);
    std::vector<float> weights(w);
    engine::TemporalWeights(engine::TemporalMode::kEma, 0.3f, w, weights.data());
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    // Two chunks of heads where there are two, to exercise head_begin.
    const int32_t chunk = s.heads > 1 ? s.heads / 2 : 1;
    std::vector<float> probs(static_cast<size_t>(s.heads) * w * n, NAN);
    std::vector<float> abar(static_cast<size_t>(s.heads) * m),
        obar(static_cast<size_t>(s.heads) * d);
    std::vector<float> scores(static_cast<size_t>(s.heads) * m);
    const int64_t qrow = int64_t{s.heads} * d;
    for (int32_t h0 = 0; h0 < s.heads; h0 += chunk) {
      float* p = probs.data() + int64_t{h0} * w * n;
      ASSERT_TRUE(LaunchWindowProbs(layer.LastQueries(w), qrow, w, m, layer.Pages(), s.heads, h0,
                                    chunk, scale, p, nullptr)
                      .ok());
      ASSERT_TRUE(
          LaunchAggregateRows(p, weights.data(), chunk, w, n, m, abar.data() + h0 * m, nullptr)
              .ok());
      ASSERT_TRUE(LaunchCandidateOutput(abar.data() + h0 * m, layer.Pages(), s.heads, h0, chunk, m,
                                        obar.data() + h0 * d, nullptr)
                      .ok());
      ASSERT_TRUE(LaunchReconstructionScores(abar.data() + h0 * m, obar.data() + h0 * d,
                                             layer.Pages(), r.data(), s.heads, h0, chunk, m, 1.0f,
                                             scores.data() + h0 * m, nullptr)
                      .ok());
    }
    for (int32_t h = 0; h < s.heads; ++h) {
      SCOPED_TRACE(absl::StrFormat("head %d", h));
      const float* kh = layer.k.data() + int64_t{h / group} * n * d;
      const float* vh = layer.v.data() + int64_t{h / group} * n * d;
      std::vector<float> ref(static_cast<size_t>(w) * n);
      engine::WindowAttention(layer.LastQueries(w) + h * d, qrow, kh, w, n, d, ref.data());
      ExpectClose(probs.data() + int64_t{h} * w * n, ref.data(), int64_t{w} * n, 1e-6, 1e-4,
                  "probs");
      // The rest from the CPU's probabilities, so each step is checked alone.
      std::vector<float> ref_abar(m), ref_obar(d), ref_scores(m);
      engine::AggregateRows(weights.data(), ref.data(), w, n, m, ref_abar.data());
      ExpectClose(abar.data() + int64_t{h} * m, ref_abar.data(), m, 1e-6, 1e-4, "abar");
      engine::CandidateOutput(abar.data() + int64_t{h} * m, vh, m, d, ref_obar.data());
      ExpectClose(obar.data() + int64_t{h} * d, ref_obar.data(), d, 1e-6, 1e-5, "obar");
      engine::ScoringScratch scratch;
      engine::ProjectedDistances(obar.data() + int64_t{h} * d, vh, m, d,
                                 r.data() + int64_t{h} * d * d, &scratch, ref_scores.data());
      engine::AfterScores(abar.data() + int64_t{h} * m, ref_scores.data(), m, 1.0f,
                          ref_scores.data());
      ExpectClose(scores.data() + int64_t{h} * m, ref_scores.data(), m, 1e-7, 1e-4, "scores");
    }
  }
}

TEST(EvictionKernelsTest, WindowAttentionAndReconstructionMatchCpu) {
  for (const LayerShape& s : kShapes) CheckWindowAttentionAndReconstruction(s, KvDtype::kF32);
}

// The stored 16- and 8-bit elements widen to the values DecodeKvRow gives.
TEST(EvictionKernelsTest, WindowAttentionAndReconstructionMatchCpuOnEveryDtype) {
  for (KvDtype dtype : {KvDtype::kF16, KvDtype::kBf16, KvDtype::kQ8_0}) {
    for (const LayerShape& s : {kShapes[0], kShapes[2]}) {
      CheckWindowAttentionAndReconstruction(s, dtype);
    }
  }
}

// H2O: accumulated over all queries in two row chunks, against the CPU.
TEST(EvictionKernelsTest, AccumulatedAttentionMatchesCpu) {
  for (const LayerShape& s : {LayerShape{45, 2, 2, 64, 1}, LayerShape{29, 8, 2, 128, 8}}) {
    SCOPED_TRACE(Name(s));
    RandomLayer layer(s, 12);
    const int32_t n = s.num_tokens, d = s.head_dim;
    const int64_t qrow = int64_t{s.heads} * d;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    std::vector<float> acc(static_cast<size_t>(s.heads) * n, NAN);
    const int32_t half = n / 2;
    for (int32_t t0 : {0, half}) {
      const int32_t rows = t0 == 0 ? half : n - half;
      std::vector<float> probs(static_cast<size_t>(s.heads) * rows * n);
      ASSERT_TRUE(LaunchWindowProbs(layer.q_all.data() + t0 * qrow, qrow, rows, t0, layer.Pages(),
                                    s.heads, 0, s.heads, scale, probs.data(), nullptr)
                      .ok());
      ASSERT_TRUE(
          LaunchAccumulateRows(probs.data(), s.heads, rows, n, t0 == 0, acc.data(), nullptr).ok());
    }
    std::vector<float> ref(acc.size());
    engine::H2oReferenceScores(layer.q_all.data(), layer.k.data(), n, s.heads, s.kv_heads, d,
                               ref.data());
    ExpectClose(acc.data(), ref.data(), static_cast<int64_t>(ref.size()), 1e-5, 1e-4, "h2o");
  }
}

// Rows with many exact ties (values on a coarse grid), NaNs and zeros: the
// drift's top-k position sums and the adaptive shapes must equal the CPU's.
TEST(EvictionKernelsTest, AdaptiveShapesMatchCpuWithTies) {
  std::mt19937 rng(3);
  for (int32_t n : {33, 129, 300}) {
    for (int32_t w : {2, 8}) {
      for (int32_t top_k : {1, 7, n / 2, n - 1}) {
        SCOPED_TRACE(absl::StrFormat("n=%d w=%d k=%d", n, w, top_k));
        std::vector<float> probs(static_cast<size_t>(w) * n);
        std::uniform_int_distribution<int> level(0, 9);
        for (float& x : probs) x = 0.01f * level(rng);
        probs[3] = NAN;
        std::vector<int64_t> sums(w);
        ASSERT_TRUE(LaunchTopKPositionSums(probs.data(), w, n, top_k, sums.data(), nullptr).ok());
        engine::DriftScratch scratch;
        const double drift = engine::WindowDrift(probs.data(), w, n, top_k, &scratch);
        for (double beta : {1.0, 3.0, 2000.0}) {
          PoolShape shape{};
          ASSERT_TRUE(
              LaunchAdaptiveShapes(sums.data(), 1, w, top_k, beta, 5, &shape, nullptr).ok());
          const engine::AdaptiveKernel want = engine::AdaptiveKernelFor(drift, beta, 5);
          EXPECT_EQ(shape.size, want.size) << "beta " << beta << " drift " << drift;
          EXPECT_EQ(shape.shift, want.shift) << "beta " << beta << " drift " << drift;
        }
      }
    }
  }
}

TEST(EvictionKernelsTest, PoolsMatchCpu) {
  std::mt19937 rng(4);
  std::normal_distribution<float> dist;
  for (int64_t num : {1, 2, 9, 130}) {
    const int32_t heads = 3;
    std::vector<float> in(heads * num);
    for (float& x : in) x = dist(rng);
    const std::vector<PoolShape> shapes = {{5, 1}, {9, -3}, {1, 0}};
    std::vector<float> got(in.size()), ref(num);
    ASSERT_TRUE(LaunchPool(PoolKind::kShiftedBox, in.data(), heads, num, shapes.data(), 0,
                           got.data(), nullptr)
                    .ok());
    for (int32_t h = 0; h < heads; ++h) {
      engine::ShiftedReplicateBox(in.data() + h * num, num, shapes[h].size, shapes[h].shift,
                                  ref.data());
      ExpectClose(got.data() + h * num, ref.data(), num, 1e-7, 1e-6, "box");
    }
    for (int32_t size : {1, 5, 21}) {
      ASSERT_TRUE(LaunchPool(PoolKind::kAvgZeroPad, in.data(), heads, num, nullptr, size,
                             got.data(), nullptr)
                      .ok());
      for (int32_t h = 0; h < heads; ++h) {
        engine::AvgPoolZeroPad(in.data() + h * num, num, size, ref.data());
        ExpectClose(got.data() + h * num, ref.data(), num, 1e-7, 1e-6, "avg");
      }
      ASSERT_TRUE(
          LaunchPool(PoolKind::kMax, in.data(), heads, num, nullptr, size, got.data(), nullptr)
              .ok());
      for (int32_t h = 0; h < heads; ++h) {
        engine::MaxPool(in.data() + h * num, num, size, ref.data());
        EXPECT_EQ(std::vector<float>(got.begin() + h * num, got.begin() + (h + 1) * num), ref);
      }
    }
  }
  EXPECT_EQ(LaunchPool(PoolKind::kAvgZeroPad, nullptr, 1, 4, nullptr, 4, nullptr, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EvictionKernelsTest, GqaReductionIsBitExact) {
  std::mt19937 rng(6);
  std::normal_distribution<float> dist;
  for (int32_t group : {1, 4, 8}) {
    const int32_t groups = 2;
    const int64_t num = 97, stride = 101;
    std::vector<float> s(groups * group * stride);
    for (float& x : s) x = dist(rng);
    for (bool use_max : {false, true}) {
      std::vector<float> got(groups * num), ref(num);
      ASSERT_TRUE(
          LaunchReduceGroups(s.data(), groups, group, stride, num, use_max, got.data(), nullptr)
              .ok());
      for (int32_t g = 0; g < groups; ++g) {
        engine::ReduceGroupScores(use_max ? engine::GqaReduce::kMax : engine::GqaReduce::kMean,
                                  s.data() + g * group * stride, group, stride, num, ref.data());
        EXPECT_EQ(std::vector<float>(got.begin() + g * num, got.begin() + (g + 1) * num), ref)
            << "group " << group << " max " << use_max;
      }
    }
  }
}

// Ties (coarse grid), NaN (ranks lowest), -0 == +0, k of 1 .. num.
TEST(EvictionKernelsTest, TopKIndicesBreakTiesLikeTheCpu) {
  std::mt19937 rng(7);
  for (int64_t num : {1, 5, 64, 129, 1000}) {
    for (int32_t k : {1, 3, 64, 500, 1000}) {
      const int32_t rows = 3, window = 4;
      std::vector<float> scores(rows * (num + 2));
      std::uniform_int_distribution<int> level(-3, 3);
      for (float& x : scores) x = 0.5f * level(rng);
      scores[0] = NAN;
      if (num > 2) scores[2] = -0.0f;
      const int32_t kk = static_cast<int32_t>(std::min<int64_t>(k, num));
      std::vector<int32_t> got(rows * (kk + window), -1);
      ASSERT_TRUE(
          LaunchTopKIndices(scores.data(), rows, num + 2, num, k, window, got.data(), nullptr).ok())
          << num << " " << k;
      for (int32_t r = 0; r < rows; ++r) {
        std::vector<float> scratch;
        std::vector<int32_t> want;
        engine::TopKIndices(scores.data() + r * (num + 2), num, k, &scratch, &want);
        for (int32_t i = 0; i < window; ++i) want.push_back(static_cast<int32_t>(num + i));
        EXPECT_EQ(std::vector<int32_t>(got.begin() + r * (kk + window),
                                       got.begin() + (r + 1) * (kk + window)),
                  want)
            << "num " << num << " k " << k << " row " << r;
      }
    }
  }
}

// In-place compaction through the staging buffer equals a host gather of
// the same kept lists; rows past `kept` are untouched.
// Rows and scales move bit for bit, for every dtype (and a q8_0 head_dim
// whose rows are an odd number of bytes, copied a byte at a time).
TEST(EvictionKernelsTest, CompactionMovesKeptTokensToTheFront) {
  std::vector<std::pair<LayerShape, KvDtype>> cases;
  for (const LayerShape& s : kShapes) cases.emplace_back(s, KvDtype::kF32);
  for (KvDtype dtype : {KvDtype::kF16, KvDtype::kBf16, KvDtype::kQ8_0}) {
    cases.emplace_back(kShapes[1], dtype);
  }
  cases.emplace_back(LayerShape{37, 2, 2, 63, 8}, KvDtype::kQ8_0);
  cases.emplace_back(LayerShape{37, 2, 2, 63, 8}, KvDtype::kF16);
  for (const auto& [s, dtype] : cases) {
    SCOPED_TRACE(Name(s) + " " + std::string(KvDtypeName(dtype)));
    RandomLayer layer(s, 13, 2.0f, dtype);
    const RandomLayer before = layer;
    const int32_t kept = s.num_tokens / 3;
    std::mt19937 rng(8);
    std::vector<int32_t> keep;
    for (int32_t h = 0; h < s.kv_heads; ++h) {
      std::vector<int32_t> all(s.num_tokens);
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      all.resize(kept);
      std::sort(all.begin(), all.end());
      keep.insert(keep.end(), all.begin(), all.end());
    }
    std::vector<uint8_t> staged(StagedKeptBytes(layer.Pages(), kept));
    ASSERT_TRUE(
        LaunchGatherKept(layer.Pages(), keep.data(), kept, kept, staged.data(), nullptr).ok());
    ASSERT_TRUE(LaunchScatterKept(staged.data(), layer.Pages(), kept, nullptr).ok());
    for (int32_t h = 0; h < s.kv_heads; ++h) {
      for (int32_t i = 0; i < s.num_tokens; ++i) {
        const int32_t from = i < kept ? keep[h * kept + i] : i;
        ASSERT_EQ(layer.Slot(i, h), before.Slot(from, h)) << "head " << h << " slot " << i;
      }
    }
  }
}

TEST(EvictionKernelsTest, UnsupportedShapesAreInvalidArgument) {
  RandomLayer layer({20, 2, 2, 64, 8}, 1);
  KvPages kv = layer.Pages();
  std::vector<float> out(20 * 4 * 2);
  EXPECT_EQ(LaunchWindowProbs(layer.q_all.data(), 128, 2, 0, kv, 3, 0, 3, 1.0f, out.data(), nullptr)
                .code(),
            absl::StatusCode::kInvalidArgument);  // 3 heads over 2 KV heads
  kv.head_dim = 512;
  EXPECT_EQ(
      LaunchWindowProbs(layer.q_all.data(), 1024, 2, 0, kv, 2, 0, 2, 1.0f, out.data(), nullptr)
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LaunchTopKIndices(out.data(), 1, 10, 10, 0, 0, nullptr, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LaunchGatherKept(layer.Pages(), nullptr, 0, 21, out.data(), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace restkv::kernels::cuda
