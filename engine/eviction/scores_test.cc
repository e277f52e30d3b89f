#include "engine/eviction/scores.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/eviction/testdata.h"

namespace restkv::engine {
namespace {

namespace td = testdata;

float Aggregate(TemporalMode mode, float alpha, const std::vector<float>& rows) {
  const int32_t n = static_cast<int32_t>(rows.size());
  std::vector<float> weights(n);
  TemporalWeights(mode, alpha, n, weights.data());
  float out = 0.0f;
  AggregateRows(weights.data(), rows.data(), n, 1, 1, &out);
  return out;
}

TEST(EvictionTemporalTest, EmaWorkedExamples) {  // §7.1
  std::vector<float> w(4);
  TemporalWeights(TemporalMode::kEma, 0.3f, 4, w.data());
  EXPECT_NEAR(w[0], 0.343f, 1e-6f);
  EXPECT_NEAR(w[1], 0.147f, 1e-6f);
  EXPECT_NEAR(w[2], 0.21f, 1e-6f);
  EXPECT_NEAR(w[3], 0.3f, 1e-6f);
  EXPECT_NEAR(Aggregate(TemporalMode::kEma, 0.3f, {0.1f, 0.4f, 0.2f, 0.3f}), 0.2251f,
              1e-5f * 0.2251f);
  EXPECT_NEAR(Aggregate(TemporalMode::kEma, 0.9f, {10, 20, 30, 40, 50}), 48.889f, 1e-5f * 48.889f);
}

TEST(EvictionTemporalTest, EmaWeightsOfThirtyTwoRows) {  // §7.1
  std::vector<float> w(32);
  TemporalWeights(TemporalMode::kEma, 0.3f, 32, w.data());
  EXPECT_NEAR(w[31], 0.3f, 1e-5f * 0.3f);
  EXPECT_NEAR(w[30], 0.21f, 1e-5f * 0.21f);
  EXPECT_NEAR(w[1], 6.7618e-6f, 1e-5f * 6.7618e-6f);
  EXPECT_NEAR(w[0], 1.57775e-5f, 1e-5f * 1.57775e-5f);
  double sum = 0;
  for (float x : w) sum += x;
  EXPECT_NEAR(sum, 1.0, 1e-6);
}

TEST(EvictionTemporalTest, OtherModesMatchTheirRecursions) {
  const std::vector<float> rows = {0.1f, 0.4f, 0.2f, 0.3f};
  EXPECT_NEAR(Aggregate(TemporalMode::kMean, 0.3f, rows), 0.25f, 1e-7f);
  EXPECT_NEAR(Aggregate(TemporalMode::kLast, 0.3f, rows), 0.3f, 1e-7f);
  // Reverse recursion: e = .3; .3*.2+.7*.3; .3*.4+.7*e; .3*.1+.7*e.
  double e = 0.3;
  for (double x : {0.2, 0.4, 0.1}) e = 0.3 * x + 0.7 * e;
  EXPECT_NEAR(Aggregate(TemporalMode::kInvEma, 0.3f, rows), e, 1e-6);
  // Alpha 1 keeps only the newest row.
  EXPECT_NEAR(Aggregate(TemporalMode::kEma, 1.0f, rows), 0.3f, 1e-7f);
}

TEST(EvictionWindowAttentionTest, WorkedExampleRows) {  // §7.2
  std::vector<float> probs(td::kW * td::kN, -1.0f);
  WindowAttention(td::kQueries.data(), td::kD, td::kKeys.data(), td::kW, td::kN, td::kD,
                  probs.data());
  td::ExpectPrinted(probs.data(), td::kProbs, "A");
  for (int t = 0; t < td::kW; ++t) {
    double sum = 0;
    for (int j = 0; j < td::kN; ++j) sum += probs[t * td::kN + j];
    EXPECT_NEAR(sum, 1.0, 1e-6) << "row " << t;
    for (int j = td::kM + t + 1; j < td::kN; ++j) EXPECT_EQ(probs[t * td::kN + j], 0.0f);
  }
}

TEST(EvictionIndicatorTest, WorkedExamplePieces) {  // §7.2
  std::vector<float> weights(td::kW), abar(td::kM), obar(td::kD), delta(td::kM), s(td::kM);
  TemporalWeights(TemporalMode::kEma, 0.3f, td::kW, weights.data());
  AggregateRows(weights.data(), td::kProbs.data(), td::kW, td::kN, td::kM, abar.data());
  td::ExpectPrinted(abar.data(), td::kAbar, "abar");
  CandidateOutput(td::kAbar.data(), td::kValues.data(), td::kM, td::kD, obar.data());
  td::ExpectPrinted(obar.data(), td::kObar, "obar");
  for (int j = 0; j < td::kM; ++j) {
    EXPECT_NEAR(OddsRatio(td::kAbar[j]), td::kOdds[j], td::PrintedTolerance(td::kOdds[j]) * 2) << j;
  }
  ScoringScratch scratch;
  ProjectedDistances(td::kObar.data(), td::kValues.data(), td::kM, td::kD, td::kR.data(), &scratch,
                     delta.data());
  td::ExpectPrinted(delta.data(), td::kDelta, "delta");
  AfterScores(td::kAbar.data(), td::kDelta.data(), td::kM, 1.0f, s.data());
  td::ExpectPrinted(s.data(), td::kScores, "s");
  ProjectedDistances(td::kObar.data(), td::kValues.data(), td::kM, td::kD, nullptr, &scratch,
                     delta.data());
  td::ExpectPrinted(delta.data(), td::kDeltaNoWo, "delta without W_O");
}

std::vector<float> Indicator(const IndicatorParams& params, const float* r) {
  std::vector<float> probs(td::kW * td::kN), s(td::kM);
  WindowAttention(td::kQueries.data(), td::kD, td::kKeys.data(), td::kW, td::kN, td::kD,
                  probs.data());
  ScoringScratch scratch;
  ReconstructionScores(params, probs.data(), td::kW, td::kN, td::kValues.data(), td::kD, r,
                       &scratch, s.data());
  return s;
}

TEST(EvictionIndicatorTest, WorkedExampleEndToEnd) {  // §7.2
  IndicatorParams params;
  td::ExpectPrinted(Indicator(params, td::kR.data()).data(), td::kScores, "s");
  td::ExpectPrinted(Indicator(params, nullptr).data(), td::kScoresNoWo, "s without W_O");
  params.metric = MetricMode::kBefore;
  td::ExpectPrinted(Indicator(params, td::kR.data()).data(), td::kScoresBefore, "s before");
}

TEST(EvictionIndicatorTest, MeanInsteadOfEma) {  // §7.2
  std::vector<float> weights(td::kW), abar(td::kM);
  TemporalWeights(TemporalMode::kMean, 0.3f, td::kW, weights.data());
  AggregateRows(weights.data(), td::kProbs.data(), td::kW, td::kN, td::kM, abar.data());
  td::ExpectPrinted(abar.data(), td::kAbarMean, "abar (mean)");
}

TEST(EvictionIndicatorTest, OddsRatioIsClampedNearOne) {
  EXPECT_TRUE(std::isfinite(OddsRatio(1.0f)));
  EXPECT_NEAR(OddsRatio(1.0f), 1e6f, 1e6f * 0.2f);
  EXPECT_EQ(OddsRatio(0.0f), 0.0f);
}

// Plain double-precision oracle of §2.1–§2.3 for one head (style: the
// reference path the fast one is checked against).
std::vector<double> ReferenceIndicator(const IndicatorParams& p, const std::vector<float>& q,
                                       const std::vector<float>& k, const std::vector<float>& v,
                                       const float* r, int w, int n, int d) {
  const int m = n - w;
  std::vector<std::vector<double>> a(w, std::vector<double>(n, 0.0));
  for (int t = 0; t < w; ++t) {
    double mx = -1e300, sum = 0;
    std::vector<double> logit(n);
    for (int j = 0; j <= m + t; ++j) {
      double dot = 0;
      for (int i = 0; i < d; ++i) dot += double{q[t * d + i]} * k[j * d + i];
      logit[j] = dot / std::sqrt(double(d));
      mx = std::max(mx, logit[j]);
    }
    for (int j = 0; j <= m + t; ++j) sum += std::exp(logit[j] - mx);
    for (int j = 0; j <= m + t; ++j) a[t][j] = std::exp(logit[j] - mx) / sum;
  }
  std::vector<double> c(w);
  for (int t = 0; t < w; ++t) {
    c[t] = p.temporal == TemporalMode::kMean ? 1.0 / w
           : t == 0                          ? std::pow(1.0 - p.alpha, w - 1)
                                             : p.alpha * std::pow(1.0 - p.alpha, w - 1 - t);
  }
  auto proj_norm = [&](const std::vector<double>& x) {
    double s = 0;
    for (int i = 0; i < d; ++i) {
      double y = 0;
      for (int kk = 0; kk < d; ++kk) y += (r ? r[i * d + kk] : (i == kk)) * x[kk];
      s += y * y;
    }
    return std::sqrt(s);
  };
  auto odds = [](double x) {
    x = std::min(x, 1.0 - 1e-6);
    return x / (1.0 - x);
  };
  std::vector<double> s(m, 0.0);
  std::vector<double> x(d);
  if (p.metric == MetricMode::kAfter) {
    std::vector<double> abar(m, 0.0), obar(d, 0.0);
    for (int j = 0; j < m; ++j) {
      for (int t = 0; t < w; ++t) abar[j] += c[t] * a[t][j];
      for (int i = 0; i < d; ++i) obar[i] += abar[j] * v[j * d + i];
    }
    for (int j = 0; j < m; ++j) {
      for (int i = 0; i < d; ++i) x[i] = obar[i] - v[j * d + i];
      s[j] = odds(abar[j]) * std::pow(proj_norm(x), p.tau);
    }
    return s;
  }
  for (int t = 0; t < w; ++t) {
    std::vector<double> o(d, 0.0);
    for (int j = 0; j < n; ++j) {
      for (int i = 0; i < d; ++i) o[i] += a[t][j] * v[j * d + i];
    }
    const double norm = p.use_norm ? proj_norm(o) : 1.0;
    for (int j = 0; j < m; ++j) {
      for (int i = 0; i < d; ++i) x[i] = o[i] - v[j * d + i];
      s[j] += c[t] * odds(a[t][j]) * proj_norm(x) / norm;
    }
  }
  return s;
}

TEST(EvictionIndicatorTest, FastPathMatchesReferenceAcrossBlocks) {
  constexpr int kTokens = 613, kWin = 8, kDim = 16;  // M = 605: three distance blocks
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto fill = [&](int n, float scale) {
    std::vector<float> x(n);
    for (float& e : x) e = scale * normal(rng);
    return x;
  };
  const std::vector<float> q = fill(kWin * kDim, 1.5f), k = fill(kTokens * kDim, 1.0f),
                           v = fill(kTokens * kDim, 1.0f);
  std::vector<float> r = fill(kDim * kDim, 0.5f);
  for (int i = 0; i < kDim; ++i) {
    for (int j = 0; j < i; ++j) r[i * kDim + j] = 0.0f;
  }
  std::vector<float> probs(kWin * kTokens), s(kTokens - kWin);
  WindowAttention(q.data(), kDim, k.data(), kWin, kTokens, kDim, probs.data());
  ScoringScratch scratch;
  struct Case {
    MetricMode metric;
    TemporalMode temporal;
    bool use_norm;
    float tau;
    bool use_wo;
  };
  for (const Case& c : {Case{MetricMode::kAfter, TemporalMode::kEma, false, 1.0f, true},
                        Case{MetricMode::kAfter, TemporalMode::kMean, false, 1.0f, false},
                        Case{MetricMode::kAfter, TemporalMode::kEma, false, 0.5f, true},
                        Case{MetricMode::kBefore, TemporalMode::kEma, false, 1.0f, true},
                        Case{MetricMode::kBefore, TemporalMode::kEma, true, 1.0f, true},
                        Case{MetricMode::kBefore, TemporalMode::kMean, true, 1.0f, false}}) {
    IndicatorParams p;
    p.metric = c.metric;
    p.temporal = c.temporal;
    p.use_norm = c.use_norm;
    p.tau = c.tau;
    const float* rp = c.use_wo ? r.data() : nullptr;
    ReconstructionScores(p, probs.data(), kWin, kTokens, v.data(), kDim, rp, &scratch, s.data());
    SCOPED_TRACE(::testing::Message() << "metric " << static_cast<int>(c.metric) << " norm "
                                      << c.use_norm << " tau " << c.tau << " wo " << c.use_wo);
    td::ExpectRelative(s.data(), ReferenceIndicator(p, q, k, v, rp, kWin, kTokens, kDim), "s");
  }
}

TEST(EvictionH2oTest, ReferenceColumnSumsOfTinyCase) {
  // One head, N = 3, d = 1: keys 0 so every visible key gets equal weight.
  const std::vector<float> q = {1.0f, 1.0f, 1.0f}, k = {0.0f, 0.0f, 0.0f};
  std::vector<float> out(3);
  H2oReferenceScores(q.data(), k.data(), 3, 1, 1, 1, out.data());
  EXPECT_NEAR(out[0], 1.0f + 0.5f + 1.0f / 3, 1e-6f);
  EXPECT_NEAR(out[1], 0.5f + 1.0f / 3, 1e-6f);
  EXPECT_NEAR(out[2], 1.0f / 3, 1e-6f);
}

}  // namespace
}  // namespace restkv::engine
