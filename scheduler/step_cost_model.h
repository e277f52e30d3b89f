// StepCostModel: the step-time prices (StepCost), fitted to measured step
// times and kept current.
//
// Each Observe(work, ms) adds one measured step. The prices are the
// weighted least-squares fit of ms ≈ StepCost::Ms(work) over the steps seen,
// older steps' weights decaying as exp(-(step time since) / memory_ms) (so
// the fit follows a machine whose speed changes: other load, thermal limits,
// caches), regularised toward the prior prices by `prior_weight`
// pseudo-steps.
//
// NOTE(restkv): the memory is in step time, not in steps: a long run of
// decode-only steps (milliseconds each, saying nothing about attention over
// long prompts) must not wash out the prefill steps that priced attention a
// few seconds ago, which a per-step decay would do within a few hundred
// steps. The regulariser keeps the fit defined when the steps seen so
// far do not separate the three terms (only decodes, say: then the prior
// keeps the attention price) and makes the first steps plan with the prior.
// Prices never go negative: a term the data would price below zero is held
// at zero and the others are refitted.
//
// Pure: no clock. The caller measures. Thread safety: none.
#pragma once

#include <array>
#include <cstdint>

#include "scheduler/step_cost.h"

namespace restkv::scheduler {

struct StepCostModelOptions {
  StepCost prior;              // every price > 0
  double memory_ms = 30000;    // of measured step time
  double prior_weight = 0.01;  // pseudo-steps of `kReferenceMs` per term
};

class StepCostModel {
 public:
  // REQUIRES: every prior price > 0, memory_ms > 0, prior_weight > 0.
  explicit StepCostModel(const StepCostModelOptions& options);

  // One step that did `work` took `ms` milliseconds. Steps that did nothing
  // or took no time are ignored.
  void Observe(const StepWork& work, double ms);

  // The current prices.
  [[nodiscard]] const StepCost& cost() const { return cost_; }
  [[nodiscard]] int64_t num_observations() const { return num_observations_; }

  // The prior counts as if each of its terms alone had priced a step of
  // this many milliseconds correctly.
  static constexpr double kReferenceMs = 10.0;

 private:
  void Refit();

  const StepCostModelOptions options_;
  // Decayed normal equations over the observations, in units of the prior
  // prices (step_cost_model.cc): sum w·u·uᵀ and sum w·u·ms.
  std::array<std::array<double, 3>, 3> xtx_{};
  std::array<double, 3> xty_{};
  StepCost cost_;
  int64_t num_observations_ = 0;
};

}  // namespace restkv::scheduler
