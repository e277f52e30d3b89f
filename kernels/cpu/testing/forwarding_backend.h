// ForwardingBackend: a Backend that hands every operation to a CpuBackend,
// for tests that need a backend which behaves like another device in one
// respect (memory the host may not address, a failed device) and computes
// exactly like the CPU in every other. Subclasses override what differs.
#pragma once

#include <memory>
#include <string_view>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::kernels {

class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(int threads) : cpu_(threads) {}
  std::string_view name() const override { return cpu_.name(); }
  ThreadPool* host_pool() override { return cpu_.host_pool(); }
  bool host_addressable() const override { return cpu_.host_addressable(); }
  absl::Status status() const override { return cpu_.status(); }
  absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) override {
    return cpu_.Allocate(bytes);
  }
  absl::StatusOr<Matrix> PrepareMatrix(GgmlType type, int64_t rows, int64_t cols,
                                       const void* host) override {
    return cpu_.PrepareMatrix(type, rows, cols, host);
  }
  absl::StatusOr<const float*> PrepareVector(GgmlType type, int64_t n, const void* host) override {
    return cpu_.PrepareVector(type, n, host);
  }
  void CopyToHost(const float* src, float* dst, size_t n) override { cpu_.CopyToHost(src, dst, n); }
  void CopyFromHost(const float* src, float* dst, size_t n) override {
    cpu_.CopyFromHost(src, dst, n);
  }
  void CopyDevice(const float* src, float* dst, size_t n) override { cpu_.CopyDevice(src, dst, n); }
  void GatherRows(const float* src, const int64_t* rows, int64_t num_rows, int64_t width,
                  float* dst) override {
    cpu_.GatherRows(src, rows, num_rows, width, dst);
  }
  void MatMul(const Matrix& w, const float* x, int64_t m, float* y) override {
    cpu_.MatMul(w, x, m, y);
  }
  void Embedding(const Matrix& table, const int32_t* ids, int64_t m, float* out) override {
    cpu_.Embedding(table, ids, m, out);
  }
  void RmsNorm(const float* x, const float* weight, int64_t m, int64_t n, float eps,
               float* y) override {
    cpu_.RmsNorm(x, weight, m, n, eps, y);
  }
  void AddBias(float* x, const float* bias, int64_t m, int64_t n) override {
    cpu_.AddBias(x, bias, m, n);
  }
  void Add(float* x, const float* y, int64_t n) override { cpu_.Add(x, y, n); }
  void Rope(float* x, const int32_t* positions, int64_t m, int32_t heads, int32_t head_dim,
            const RopeParams& params) override {
    cpu_.Rope(x, positions, m, heads, head_dim, params);
  }
  void SwiGlu(float* gate, const float* up, int64_t n) override { cpu_.SwiGlu(gate, up, n); }
  void StoreKv(const float* k, const float* v, const KvSlot* slots, int64_t m,
               const KvPageLayout& kv) override {
    cpu_.StoreKv(k, v, slots, m, kv);
  }
  void Attention(const float* q, absl::Span<const AttentionSeq> seqs, int32_t heads,
                 const KvPageLayout& kv, float scale, float* out) override {
    cpu_.Attention(q, seqs, heads, kv, scale, out);
  }
  bool SupportsKvDtype(KvDtype dtype) const override { return cpu_.SupportsKvDtype(dtype); }

 protected:
  cpu::CpuBackend cpu_;
};

}  // namespace restkv::kernels
