#include "engine/eviction/wo_factor.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace restkv::engine {
namespace {

// Upper-triangular R with R^T R = G for a symmetric positive semi-definite G
// ([d][d] row-major, upper triangle read). Pivots at or below `tol` are zero
// directions of G: their rows of R stay zero.
void SemiDefiniteCholesky(const double* g, int32_t d, double tol, float* r_out) {
  std::vector<double> r(static_cast<size_t>(d) * d, 0.0);
  for (int32_t i = 0; i < d; ++i) {
    double pivot = g[i * d + i];
    for (int32_t k = 0; k < i; ++k) pivot -= r[k * d + i] * r[k * d + i];
    if (pivot <= tol) continue;
    const double rii = std::sqrt(pivot);
    r[i * d + i] = rii;
    for (int32_t j = i + 1; j < d; ++j) {
      double x = g[i * d + j];
      for (int32_t k = 0; k < i; ++k) x -= r[k * d + i] * r[k * d + j];
      r[i * d + j] = x / rii;
    }
  }
  for (size_t i = 0; i < r.size(); ++i) r_out[i] = static_cast<float>(r[i]);
}

}  // namespace

std::vector<float> ComputeWoFactor(const float* wo, int32_t hidden, int32_t num_heads,
                                   int32_t head_dim, ThreadPool* pool) {
  RESTKV_CHECK(hidden >= 1 && num_heads >= 1 && head_dim >= 1)
      << hidden << " " << num_heads << " " << head_dim;
  const int32_t d = head_dim;
  const int64_t row = static_cast<int64_t>(num_heads) * d;
  std::vector<float> factor(static_cast<size_t>(num_heads) * d * d, 0.0f);
  auto run = [&](int64_t h0, int64_t h1, int) {
    std::vector<double> w(static_cast<size_t>(hidden) * d);
    std::vector<double> gram(static_cast<size_t>(d) * d);
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t r = 0; r < hidden; ++r) {
        const float* src = wo + r * row + h * d;
        std::copy(src, src + d, w.begin() + r * d);
      }
      // G_h = W_O^h^T W_O^h (upper triangle).
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, hidden, 1.0, w.data(), d, 0.0,
                  gram.data(), d);
      double max_diag = 0.0;
      for (int32_t i = 0; i < d; ++i) max_diag = std::max(max_diag, gram[i * d + i]);
      SemiDefiniteCholesky(gram.data(), d, 1e-12 * max_diag,
                           factor.data() + h * static_cast<int64_t>(d) * d);
    }
  };
  if (pool != nullptr) {
    pool->ParallelFor(num_heads, run);
  } else {
    run(0, num_heads, 0);
  }
  return factor;
}

}  // namespace restkv::engine
