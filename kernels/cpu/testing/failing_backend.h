// FailingBackend: computes like the CPU until its attention has run
// `attention_calls_left` times; then, like a CUDA backend after a failed
// launch, writes nothing and reports `failure` through status() from then on.
// For tests of what the model and the engine do with a failed device.
#pragma once

#include <string_view>
#include <utility>

#include "kernels/cpu/testing/forwarding_backend.h"

namespace restkv::kernels {

class FailingBackend final : public ForwardingBackend {
 public:
  FailingBackend(int attention_calls_left, absl::Status failure)
      : ForwardingBackend(2), left_(attention_calls_left), failure_(std::move(failure)) {}
  std::string_view name() const override { return "failing"; }
  absl::Status status() const override { return left_ < 0 ? failure_ : absl::OkStatus(); }
  void Attention(const float* q, absl::Span<const AttentionSeq> seqs, int32_t heads,
                 const KvPageLayout& kv, float scale, float* out) override {
    if (--left_ < 0) return;
    cpu_.Attention(q, seqs, heads, kv, scale, out);
  }

 private:
  int left_;
  const absl::Status failure_;
};

}  // namespace restkv::kernels
