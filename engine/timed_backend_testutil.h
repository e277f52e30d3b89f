// TimedBackend: a CPU backend (kernels/cpu/testing/forwarding_backend.h) that
// charges a ManualClock a modelled cost for each MatMul (per call, plus per
// multiply-add) and each Attention call (per query-key pair), so engine tests
// see step times that follow the work done — deterministic, whatever the
// machine is doing.
#pragma once

#include "common/clock.h"
#include "kernels/cpu/testing/forwarding_backend.h"

namespace restkv::engine {

struct ModelledCost {
  double ms_per_matmul_call = 0;
  double ms_per_mac = 0;
  double ms_per_attention_pair = 0;  // per (query, key) pair of one query head
};

class TimedBackend final : public kernels::ForwardingBackend {
 public:
  // `clock` must outlive the backend.
  TimedBackend(int threads, ManualClock& clock, const ModelledCost& cost)
      : ForwardingBackend(threads), clock_(clock), cost_(cost) {}

  void MatMul(const kernels::Matrix& w, const float* x, int64_t m, float* y) override {
    clock_.Advance(cost_.ms_per_matmul_call +
                   cost_.ms_per_mac * static_cast<double>(m * w.rows * w.cols));
    ForwardingBackend::MatMul(w, x, m, y);
  }
  void Attention(const float* q, absl::Span<const kernels::AttentionSeq> seqs, int32_t heads,
                 const kernels::KvPageLayout& kv, float scale, float* out) override {
    double pairs = 0;
    for (const kernels::AttentionSeq& s : seqs) {
      // Query j of the last num_q attends kv_len - num_q + j + 1 keys.
      const double first = s.kv_len - s.num_q + 1.0;
      pairs += s.num_q * (first + s.kv_len) / 2.0;
    }
    clock_.Advance(cost_.ms_per_attention_pair * pairs * heads);
    ForwardingBackend::Attention(q, seqs, heads, kv, scale, out);
  }

 private:
  ManualClock& clock_;
  const ModelledCost cost_;
};

}  // namespace restkv::engine
