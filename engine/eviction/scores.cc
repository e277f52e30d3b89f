#include "engine/eviction/scores.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/check.h"
#include "kernels/cpu/vec_math.h"

namespace restkv::engine {
namespace {

using kernels::cpu::DotF32;

// Candidates projected through R per TRMM call: large enough for BLAS to run
// at speed, small enough that the block stays in L1/L2 (256 x 128 floats).
constexpr int64_t kDistanceBlock = 256;

// Largest attention weight the odds ratio accepts (§2.7).
constexpr float kMaxAttention = 1.0f - 1e-6f;

template <typename T>
T* Grow(std::vector<T>* v, size_t n) {
  if (v->size() < n) v->resize(n);
  return v->data();
}

// max_i x[i] over n >= 1 floats.
float MaxF32(const float* x, int64_t n) {
  int64_t i = 0;
  float mx = x[0];
#if RESTKV_HAVE_AVX2
  if (n >= 8) {
    __m256 m = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, m);
    mx = *std::max_element(lanes, lanes + 8);
  }
#endif
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}

// x[i] = exp(x[i] - shift) for x[i] <= shift (softmax numerators); returns
// their sum in double. The AVX2 path is the Cephes single-precision scheme
// (range reduction by ln 2, degree-5 polynomial, exponent bits), within 2 ulp
// of std::exp; arguments below -87 (results under FLT_MIN) give 0.
double ShiftedExpSum(float* x, int64_t n, float shift) {
  int64_t i = 0;
  double sum = 0.0;
#if RESTKV_HAVE_AVX2
  const __m256 vshift = _mm256_set1_ps(shift);
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
  const __m256 ln2_hi = _mm256_set1_ps(0.693359375f);
  const __m256 ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
  const __m256 lowest = _mm256_set1_ps(-87.0f);
  const __m256 one = _mm256_set1_ps(1.0f);
  constexpr float kPoly[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                             4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
  __m256d acc_lo = _mm256_setzero_pd();
  __m256d acc_hi = _mm256_setzero_pd();
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + i), vshift);
    const __m256 underflow = _mm256_cmp_ps(v, lowest, _CMP_LT_OQ);
    const __m256 xc = _mm256_max_ps(v, lowest);
    const __m256 k =
        _mm256_round_ps(_mm256_mul_ps(xc, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, ln2_hi, xc);
    r = _mm256_fnmadd_ps(k, ln2_lo, r);
    __m256 p = _mm256_set1_ps(kPoly[0]);
    for (int c = 1; c < 6; ++c) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kPoly[c]));
    const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), one);
    const __m256i exponent =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    const __m256 e = _mm256_andnot_ps(underflow, _mm256_mul_ps(y, _mm256_castsi256_ps(exponent)));
    _mm256_storeu_ps(x + i, e);
    acc_lo = _mm256_add_pd(acc_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    acc_hi = _mm256_add_pd(acc_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(acc_lo, acc_hi));
  sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#endif
  for (; i < n; ++i) sum += (x[i] = std::exp(x[i] - shift));
  return sum;
}

// ||a - b||_2 over n floats; tmp holds n floats.
float Distance(const float* a, const float* b, int32_t n, float* tmp) {
  for (int32_t i = 0; i < n; ++i) tmp[i] = a[i] - b[i];
  return std::sqrt(DotF32(tmp, tmp, n));
}

// x[rows][d] := x * R^T (x_j := R x_j) in place for the upper-triangular r
// (TRMM: half the flops of a GEMM); nothing when r is null.
void ApplyFactorInPlace(float* x, int64_t rows, int32_t d, const float* r) {
  if (r == nullptr || rows == 0) return;
  cblas_strmm(CblasRowMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit,
              static_cast<int>(rows), d, 1.0f, r, d, x, d);
}

}  // namespace

void TemporalWeights(TemporalMode mode, float alpha, int32_t num_rows, float* weights) {
  RESTKV_CHECK_GE(num_rows, 1);
  const int32_t n = num_rows;
  switch (mode) {
    case TemporalMode::kMean:
      std::fill(weights, weights + n, 1.0f / static_cast<float>(n));
      return;
    case TemporalMode::kLast:
      std::fill(weights, weights + n, 0.0f);
      weights[n - 1] = 1.0f;
      return;
    case TemporalMode::kEma:
    case TemporalMode::kInvEma: {
      RESTKV_CHECK(alpha > 0.0f && alpha <= 1.0f) << alpha;
      // age = steps from the row folded in last; that row has age 0 and weight
      // alpha, the row that seeds the recursion keeps (1-alpha)^(n-1).
      const double a = alpha;
      for (int32_t t = 0; t < n; ++t) {
        const int32_t age = mode == TemporalMode::kEma ? n - 1 - t : t;
        const bool seed = age == n - 1;
        weights[t] = static_cast<float>((seed ? 1.0 : a) * std::pow(1.0 - a, age));
      }
      return;
    }
  }
}

void AggregateRows(const float* weights, const float* rows, int32_t num_rows, int64_t row_stride,
                   int64_t num_cols, float* out) {
  std::fill(out, out + num_cols, 0.0f);
  for (int32_t t = 0; t < num_rows; ++t) {
    if (weights[t] == 0.0f) continue;
    kernels::cpu::AxpyF32(weights[t], rows + t * row_stride, out, num_cols);
  }
}

void WindowAttention(const float* q, int64_t q_stride, const float* k, int32_t num_window,
                     int32_t num_tokens, int32_t head_dim, float* probs) {
  RESTKV_CHECK(num_window >= 1 && num_window <= num_tokens) << num_window << " " << num_tokens;
  const int64_t n = num_tokens;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  // logits[w][N] = scale * Q K^T; the masked tail of each row is overwritten.
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, num_window, num_tokens, head_dim, scale, q,
              static_cast<int>(q_stride), k, head_dim, 0.0f, probs, num_tokens);
  const int64_t first_query = n - num_window;
  for (int32_t t = 0; t < num_window; ++t) {
    float* row = probs + t * n;
    const int64_t visible = first_query + t + 1;
    const double sum = ShiftedExpSum(row, visible, MaxF32(row, visible));
    kernels::cpu::ScaleF32(static_cast<float>(1.0 / sum), row, visible);
    std::fill(row + visible, row + n, 0.0f);
  }
}

float OddsRatio(float abar) {
  const float a = std::clamp(abar, 0.0f, kMaxAttention);
  return a / (1.0f - a);
}

void CandidateOutput(const float* abar, const float* v, int64_t num_candidates, int32_t head_dim,
                     float* obar) {
  std::vector<double> acc(head_dim, 0.0);
  for (int64_t j = 0; j < num_candidates; ++j) {
    const double a = abar[j];
    const float* vj = v + j * head_dim;
    for (int32_t i = 0; i < head_dim; ++i) acc[i] += a * vj[i];
  }
  for (int32_t i = 0; i < head_dim; ++i) obar[i] = static_cast<float>(acc[i]);
}

void ProjectedDistances(const float* center, const float* v, int64_t num_candidates,
                        int32_t head_dim, const float* r, ScoringScratch* scratch, float* delta) {
  const int32_t d = head_dim;
  float* diff = Grow(&scratch->diff, kDistanceBlock * d);
  for (int64_t j0 = 0; j0 < num_candidates; j0 += kDistanceBlock) {
    const int64_t rows = std::min(kDistanceBlock, num_candidates - j0);
    // R (center - v_j) keeps full precision where v_j is close to center;
    // projecting both separately would cancel.
    for (int64_t b = 0; b < rows; ++b) {
      const float* vj = v + (j0 + b) * d;
      for (int32_t i = 0; i < d; ++i) diff[b * d + i] = center[i] - vj[i];
    }
    ApplyFactorInPlace(diff, rows, d, r);
    for (int64_t b = 0; b < rows; ++b) {
      delta[j0 + b] = std::sqrt(DotF32(diff + b * d, diff + b * d, d));
    }
  }
}

void AfterScores(const float* abar, const float* delta, int64_t num_candidates, float tau,
                 float* scores) {
  for (int64_t j = 0; j < num_candidates; ++j) {
    const float dist = tau == 1.0f ? delta[j] : std::pow(delta[j], tau);
    scores[j] = OddsRatio(abar[j]) * dist;
  }
}

namespace {

// §2.3 "before": s[t,j] = odds(A[t,j]) * ||R (o_t - v_j)|| (/ ||R o_t||), folded
// over t with the temporal weights. R (o_t - v_j) = R o_t - R v_j, so each
// candidate is projected once instead of once per row (w-fold less work for
// a little precision where v_j is close to o_t; this mode is an ablation).
void BeforeScores(const IndicatorParams& params, const float* weights, const float* probs,
                  int32_t num_window, int32_t num_tokens, const float* v, int32_t d, const float* r,
                  ScoringScratch* scratch, float* scores) {
  const int64_t n = num_tokens;
  const int64_t m = n - num_window;
  float* z = Grow(&scratch->proj, static_cast<size_t>(num_window) * d);
  float* y = Grow(&scratch->block, kDistanceBlock * d);
  float* tmp = Grow(&scratch->diff, kDistanceBlock * d);
  // z_t = R o_t, o_t = sum_j A[t, j] v_j over the whole visible row (window
  // keys included).
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, num_window, d, num_tokens, 1.0f, probs,
              num_tokens, v, d, 0.0f, z, d);
  ApplyFactorInPlace(z, num_window, d, r);
  std::vector<float> coef(num_window);
  for (int32_t t = 0; t < num_window; ++t) {
    coef[t] = weights[t];
    if (params.use_norm) {
      const float norm = std::sqrt(DotF32(z + t * d, z + t * d, d));
      coef[t] /= std::max(norm, std::numeric_limits<float>::min());
    }
  }
  std::fill(scores, scores + m, 0.0f);
  for (int64_t j0 = 0; j0 < m; j0 += kDistanceBlock) {
    const int64_t rows = std::min(kDistanceBlock, m - j0);
    std::copy(v + j0 * d, v + (j0 + rows) * d, y);
    ApplyFactorInPlace(y, rows, d, r);
    for (int32_t t = 0; t < num_window; ++t) {
      if (coef[t] == 0.0f) continue;
      const float* a = probs + t * n + j0;
      for (int64_t b = 0; b < rows; ++b) {
        scores[j0 + b] += coef[t] * OddsRatio(a[b]) * Distance(z + t * d, y + b * d, d, tmp);
      }
    }
  }
}

}  // namespace

void ReconstructionScores(const IndicatorParams& params, const float* probs, int32_t num_window,
                          int32_t num_tokens, const float* v, int32_t head_dim, const float* r,
                          ScoringScratch* scratch, float* scores) {
  const int64_t m = static_cast<int64_t>(num_tokens) - num_window;
  RESTKV_CHECK_GE(m, 0);
  std::vector<float> weights(num_window);
  TemporalWeights(params.temporal, params.alpha, num_window, weights.data());
  if (params.metric == MetricMode::kBefore) {
    BeforeScores(params, weights.data(), probs, num_window, num_tokens, v, head_dim, r, scratch,
                 scores);
    return;
  }
  float* abar = Grow(&scratch->acc, static_cast<size_t>(m));
  AggregateRows(weights.data(), probs, num_window, num_tokens, m, abar);
  float* obar = Grow(&scratch->rows, static_cast<size_t>(head_dim));
  CandidateOutput(abar, v, m, head_dim, obar);
  ProjectedDistances(obar, v, m, head_dim, r, scratch, scores);
  AfterScores(abar, scores, m, params.tau, scores);
}

void H2oReferenceScores(const float* q, const float* k, int32_t num_tokens, int32_t num_heads,
                        int32_t num_kv_heads, int32_t head_dim, float* out) {
  RESTKV_CHECK(num_kv_heads > 0 && num_heads % num_kv_heads == 0);
  const int64_t n = num_tokens;
  const int32_t group = num_heads / num_kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  std::vector<double> logits(n);
  for (int32_t h = 0; h < num_heads; ++h) {
    const float* kh = k + static_cast<int64_t>(h / group) * n * head_dim;
    float* col = out + h * n;
    std::fill(col, col + n, 0.0f);
    for (int64_t t = 0; t < n; ++t) {
      const float* qt = q + (t * num_heads + h) * head_dim;
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j <= t; ++j) {
        double dot = 0.0;
        for (int32_t i = 0; i < head_dim; ++i) dot += double{qt[i]} * kh[j * head_dim + i];
        logits[j] = dot * scale;
        mx = std::max(mx, logits[j]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j <= t; ++j) sum += (logits[j] = std::exp(logits[j] - mx));
      for (int64_t j = 0; j <= t; ++j) col[j] += static_cast<float>(logits[j] / sum);
    }
  }
}

}  // namespace restkv::engine
