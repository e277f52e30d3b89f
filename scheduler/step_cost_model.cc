#include "scheduler/step_cost_model.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "common/check.h"

namespace restkv::scheduler {
namespace {

using Vec = std::array<double, 3>;
using Mat = std::array<Vec, 3>;

Vec Features(const StepWork& w) {
  return {static_cast<double>(w.layer_passes), static_cast<double>(w.token_layers),
          static_cast<double>(w.attention_pairs)};
}

Vec Prices(const StepCost& c) {
  return {c.ms_per_layer_pass, c.ms_per_token_layer, c.ms_per_attention_pair};
}

// Solves a·x = b over the terms in `active` (the others are 0) by Gaussian
// elimination with partial pivoting; a is symmetric positive definite on
// them (the prior's diagonal), so no pivot is zero.
Vec Solve(Mat a, Vec b, const std::array<bool, 3>& active) {
  for (int i = 0; i < 3; ++i) {
    if (active[i]) continue;
    for (int j = 0; j < 3; ++j) a[i][j] = a[j][i] = 0;
    a[i][i] = 1;
    b[i] = 0;
  }
  for (int col = 0; col < 3; ++col) {
    int pivot = col;
    for (int r = col + 1; r < 3; ++r) {
      if (std::abs(a[r][col]) > std::abs(a[pivot][col])) pivot = r;
    }
    std::swap(a[col], a[pivot]);
    std::swap(b[col], b[pivot]);
    for (int r = col + 1; r < 3; ++r) {
      const double f = a[r][col] / a[col][col];
      for (int c = col; c < 3; ++c) a[r][c] -= f * a[col][c];
      b[r] -= f * b[col];
    }
  }
  Vec x{};
  for (int r = 2; r >= 0; --r) {
    double s = b[r];
    for (int c = r + 1; c < 3; ++c) s -= a[r][c] * x[c];
    x[r] = s / a[r][r];
  }
  return x;
}

}  // namespace

StepCostModel::StepCostModel(const StepCostModelOptions& options)
    : options_(options), cost_(options.prior) {
  RESTKV_CHECK_GT(options.prior.ms_per_layer_pass, 0);
  RESTKV_CHECK_GT(options.prior.ms_per_token_layer, 0);
  RESTKV_CHECK_GT(options.prior.ms_per_attention_pair, 0);
  RESTKV_CHECK_GT(options.memory_ms, 0);
  RESTKV_CHECK_GT(options.prior_weight, 0);
}

void StepCostModel::Observe(const StepWork& work, double ms) {
  // In units of the prior: u_j = x_j · p0_j is what term j would cost at the
  // prior price, so the unknowns are ratios r_j = p_j / p0_j near 1 and the
  // normal equations stay well conditioned although the raw terms differ by
  // ten orders of magnitude.
  const Vec x = Features(work);
  const Vec p0 = Prices(options_.prior);
  if (!(ms > 0) || (x[0] == 0 && x[1] == 0 && x[2] == 0)) return;
  Vec u;
  for (int i = 0; i < 3; ++i) u[i] = x[i] * p0[i];
  const double decay = std::exp(-ms / options_.memory_ms);
  for (int i = 0; i < 3; ++i) {
    xty_[i] = decay * xty_[i] + u[i] * ms;
    for (int j = 0; j < 3; ++j) xtx_[i][j] = decay * xtx_[i][j] + u[i] * u[j];
  }
  ++num_observations_;
  Refit();
}

void StepCostModel::Refit() {
  // NOTE(restkv): ridge toward the prior (r_j = 1), as prior_weight
  // pseudo-steps per term, each costing kReferenceMs at the prior price: it
  // decides the split only where the data cannot (a term that never varies
  // apart from another) and is soon outweighed where it can.
  const Vec p0 = Prices(options_.prior);
  const double lambda = options_.prior_weight * kReferenceMs * kReferenceMs;
  Mat a = xtx_;
  Vec b = xty_;
  for (int j = 0; j < 3; ++j) {
    a[j][j] += lambda;
    b[j] += lambda;
  }
  std::array<bool, 3> active = {true, true, true};
  Vec r = Solve(a, b, active);
  // Terms priced below zero are held at zero, one at a time, the most
  // negative first, refitting the rest (an active-set pass; three terms
  // need at most two).
  for (int round = 0; round < 2; ++round) {
    int worst = -1;
    for (int j = 0; j < 3; ++j) {
      if (active[j] && r[j] < 0 && (worst < 0 || r[j] < r[worst])) worst = j;
    }
    if (worst < 0) break;
    active[worst] = false;
    r = Solve(a, b, active);
  }
  cost_ = {std::max(0.0, r[0]) * p0[0], std::max(0.0, r[1]) * p0[1], std::max(0.0, r[2]) * p0[2]};
}

}  // namespace restkv::scheduler
