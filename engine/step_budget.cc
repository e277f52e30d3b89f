#include "engine/step_budget.h"

namespace restkv::engine {
namespace {

// Rough device speeds for the prior. CPU: two cores of a recent x86 server
// running the quantised integer dots (~60 GFLOP/s) and fp32 attention
// (~20 GFLOP/s), weights streamed at ~10 GB/s, ~30 µs of thread-pool and
// hook overhead per layer. CUDA: a datacenter GPU in bf16 (~200 TFLOP/s
// GEMM, ~50 TFLOP/s attention, ~2 TB/s), ~50 µs of launches per layer.
struct DeviceSpeed {
  double matmul_flop_per_ms;
  double attention_flop_per_ms;
  double weight_bytes_per_ms;
  double bytes_per_weight;
  double layer_overhead_ms;
};

DeviceSpeed SpeedOf(std::string_view backend_name) {
  if (backend_name == "cuda") return {2e11, 5e10, 2e9, 2.0, 0.05};
  return {6e7, 2e7, 1e7, 0.6, 0.03};
}

}  // namespace

double DefaultMaxStepMs(std::string_view backend_name) {
  return backend_name == "cuda" ? 100.0 : 150.0;
}

scheduler::StepCost PriorStepCost(std::string_view backend_name, const ModelConfig& c) {
  const DeviceSpeed s = SpeedOf(backend_name);
  const double d = c.hidden_size;
  // Q, K, V, O and the three FFN matrices of one layer.
  const double weights = d * (c.q_dim() + 2.0 * c.kv_dim()) + c.q_dim() * d + 3.0 * d * c.ffn_size;
  scheduler::StepCost cost;
  cost.ms_per_layer_pass =
      weights * s.bytes_per_weight / s.weight_bytes_per_ms + s.layer_overhead_ms;
  cost.ms_per_token_layer = 2.0 * weights / s.matmul_flop_per_ms;
  // q·k and p·v over every query head.
  cost.ms_per_attention_pair = 4.0 * c.q_dim() / s.attention_flop_per_ms;
  return cost;
}

}  // namespace restkv::engine
