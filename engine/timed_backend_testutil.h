// TimedBackend: a Backend that runs another one and charges a ManualClock a
// modelled cost for each MatMul (per call, plus per multiply-add) and each
// Attention call (per query-key pair), so engine tests see step times that
// follow the work done — deterministic, whatever the machine is doing.
#pragma once

#include <memory>
#include <string_view>

#include "common/clock.h"
#include "kernels/backend.h"

namespace restkv::engine {

struct ModelledCost {
  double ms_per_matmul_call = 0;
  double ms_per_mac = 0;
  double ms_per_attention_pair = 0;  // per (query, key) pair of one query head
};

class TimedBackend final : public kernels::Backend {
 public:
  // `inner` and `clock` must outlive the backend.
  TimedBackend(kernels::Backend& inner, ManualClock& clock, const ModelledCost& cost)
      : inner_(inner), clock_(clock), cost_(cost) {}

  std::string_view name() const override { return inner_.name(); }
  ThreadPool* host_pool() override { return inner_.host_pool(); }
  bool host_addressable() const override { return inner_.host_addressable(); }
  absl::StatusOr<std::unique_ptr<kernels::Buffer>> Allocate(size_t bytes) override {
    return inner_.Allocate(bytes);
  }
  absl::StatusOr<kernels::Matrix> PrepareMatrix(kernels::GgmlType type, int64_t rows, int64_t cols,
                                                const void* host) override {
    return inner_.PrepareMatrix(type, rows, cols, host);
  }
  absl::StatusOr<const float*> PrepareVector(kernels::GgmlType type, int64_t n,
                                             const void* host) override {
    return inner_.PrepareVector(type, n, host);
  }
  void CopyToHost(const float* src, float* dst, size_t n) override {
    inner_.CopyToHost(src, dst, n);
  }
  void CopyFromHost(const float* src, float* dst, size_t n) override {
    inner_.CopyFromHost(src, dst, n);
  }
  void CopyDevice(const float* src, float* dst, size_t n) override {
    inner_.CopyDevice(src, dst, n);
  }
  void GatherRows(const float* src, const int64_t* rows, int64_t num_rows, int64_t width,
                  float* dst) override {
    inner_.GatherRows(src, rows, num_rows, width, dst);
  }
  void MatMul(const kernels::Matrix& w, const float* x, int64_t m, float* y) override {
    clock_.Advance(cost_.ms_per_matmul_call +
                   cost_.ms_per_mac * static_cast<double>(m * w.rows * w.cols));
    inner_.MatMul(w, x, m, y);
  }
  void Embedding(const kernels::Matrix& table, const int32_t* ids, int64_t m, float* out) override {
    inner_.Embedding(table, ids, m, out);
  }
  void RmsNorm(const float* x, const float* weight, int64_t m, int64_t n, float eps,
               float* y) override {
    inner_.RmsNorm(x, weight, m, n, eps, y);
  }
  void AddBias(float* x, const float* bias, int64_t m, int64_t n) override {
    inner_.AddBias(x, bias, m, n);
  }
  void Add(float* x, const float* y, int64_t n) override { inner_.Add(x, y, n); }
  void Rope(float* x, const int32_t* positions, int64_t m, int32_t heads, int32_t head_dim,
            const kernels::RopeParams& params) override {
    inner_.Rope(x, positions, m, heads, head_dim, params);
  }
  void SwiGlu(float* gate, const float* up, int64_t n) override { inner_.SwiGlu(gate, up, n); }
  void StoreKv(const float* k, const float* v, const kernels::KvSlot* slots, int64_t m,
               int32_t kv_heads, int32_t head_dim, int32_t block_size) override {
    inner_.StoreKv(k, v, slots, m, kv_heads, head_dim, block_size);
  }
  void Attention(const float* q, absl::Span<const kernels::AttentionSeq> seqs, int32_t heads,
                 int32_t kv_heads, int32_t head_dim, int32_t block_size, float scale,
                 float* out) override {
    double pairs = 0;
    for (const kernels::AttentionSeq& s : seqs) {
      // Query j of the last num_q attends kv_len - num_q + j + 1 keys.
      const double first = s.kv_len - s.num_q + 1.0;
      pairs += s.num_q * (first + s.kv_len) / 2.0;
    }
    clock_.Advance(cost_.ms_per_attention_pair * pairs * heads);
    inner_.Attention(q, seqs, heads, kv_heads, head_dim, block_size, scale, out);
  }

 private:
  kernels::Backend& inner_;
  ManualClock& clock_;
  const ModelledCost cost_;
};

}  // namespace restkv::engine
