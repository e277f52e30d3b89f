// StepWork and StepCost: what one engine step computes, in the units the
// step-time budget prices it in, and the price list (milliseconds per unit).
//
//   step_ms ≈ ms_per_layer_pass     · layer_passes      (weights streamed, per-layer overheads)
//           + ms_per_token_layer    · token_layers      (matmuls, norms, eviction scoring: per row)
//           + ms_per_attention_pair · attention_pairs   (grows with the context)
//
// A layer pass is one layer run by one forward call over all its rows: the
// batched call of decodes and whole prefills runs each of the L layers once,
// a prefill slice of a layer range runs alone and pays its own passes. An
// attention pair is one (query row, cached key) pair of one layer, summed
// over KV heads' shared positions: a decode at context t attends t + 1 keys
// per layer, a prompt chunk of rows [t0, t1) attends sum_{i=t0}^{t1-1} (i+1).
//
// Pure value types; the scheduler plans with them (scheduler.h) and the
// engine fits the prices to measured step times (step_cost_model.h).
#pragma once

#include <cstdint>

namespace restkv::scheduler {

struct StepWork {
  int64_t layer_passes = 0;
  int64_t token_layers = 0;
  int64_t attention_pairs = 0;

  StepWork& operator+=(const StepWork& o) {
    layer_passes += o.layer_passes;
    token_layers += o.token_layers;
    attention_pairs += o.attention_pairs;
    return *this;
  }
  friend StepWork operator+(StepWork a, const StepWork& b) { return a += b; }
  friend bool operator==(const StepWork&, const StepWork&) = default;
};

// Causal attention pairs of query rows [t0, t1), row i attending keys [0, i].
[[nodiscard]] constexpr int64_t CausalPairs(int64_t t0, int64_t t1) {
  return (t1 * (t1 + 1) - t0 * (t0 + 1)) / 2;
}

struct StepCost {
  double ms_per_layer_pass = 0;
  double ms_per_token_layer = 0;
  double ms_per_attention_pair = 0;

  // Predicted milliseconds of `w`.
  [[nodiscard]] double Ms(const StepWork& w) const {
    return ms_per_layer_pass * static_cast<double>(w.layer_passes) +
           ms_per_token_layer * static_cast<double>(w.token_layers) +
           ms_per_attention_pair * static_cast<double>(w.attention_pairs);
  }
  [[nodiscard]] bool is_zero() const {
    return ms_per_layer_pass == 0 && ms_per_token_layer == 0 && ms_per_attention_pair == 0;
  }
};

}  // namespace restkv::scheduler
