// Backend: the operations the model forward pass needs, on one device.
//
// Legend: T = tokens in the step (packed over sequences), D = hidden size,
// H = query heads, Hkv = KV heads, d = head dim, F = FFN size, V = vocab.
//
// Contract:
// - Every pointer passed to an operation is in the backend's own memory
//   (host memory for the CPU backend; device memory for CUDA). Buffers come
//   from Allocate(); weights from PrepareMatrix()/PrepareVector(), whose
//   results stay valid as long as the backend lives.
// - Operations are synchronous from the caller's point of view on the CPU
//   backend; a device backend may queue them on its stream and must make
//   results visible before CopyToHost() returns.
// - Operations never fail on valid shapes; shape errors are programming
//   errors (RESTKV_CHECK). Fallible set-up (unsupported weight types, out of
//   memory) returns absl::Status.
//
// KV pages. A page holds `block_size` token slots of one layer for all KV
// heads, K then V (then per-row scales for q8_0), in the layout's dtype:
//   page = [ K: Hkv][block_size][d] | V: [Hkv][block_size][d] | scales ]
// (kernels/kv_dtype.h). A sequence's cache for one layer is an ordered list
// of pages (its block table); slot i of the sequence lives in page
// i / block_size, row i % block_size. Keys are stored after RoPE. StoreKv
// rounds each (token, head) row to the dtype; Attention reads the stored
// dtype directly, converting rows as it goes.
//
// Thread safety: a backend is used by one thread at a time (the engine thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/thread_pool.h"
#include "kernels/ggml_type.h"
#include "kernels/kv_dtype.h"
#include "kernels/layer_eviction.h"

namespace restkv::kernels {

// A weight matrix W [rows = out features][cols = in features], prepared for
// MatMul. `data` is backend-owned (or the mmapped file, if used in place) and
// in GGUF row layout, so Embedding can read rows of it (tied output heads use
// one matrix for both). `packed`, when set, is the backend's own faster form
// of the same weights for MatMul (opaque outside the backend).
struct Matrix {
  GgmlType type = GgmlType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;
  const void* packed = nullptr;
};

// Rotary embedding flavour: kNorm rotates adjacent pairs (x[2i], x[2i+1]) as
// in GGUF llama files (whose Q/K weights are permuted accordingly); kNeox
// rotates (x[i], x[i + d/2]) as in qwen2.
enum class RopeStyle { kNorm, kNeox };

struct RopeParams {
  RopeStyle style = RopeStyle::kNorm;
  int32_t rot_dims = 0;  // leading dims of each head that rotate (usually d)
  float theta_base = 10000.0f;
  float position_scale = 1.0f;          // linear scaling: position multiplied by this
  const float* freq_factors = nullptr;  // [rot_dims / 2] or null (Llama 3 rope_freqs)
};

// One sequence's slice of an attention call. Its queries are rows
// [q_begin, q_begin + num_q) of the packed Q; they are the *last* num_q of the
// kv_len tokens stored in `pages` (whose K/V must already be written), so
// query j attends to kv slots [0, kv_len - num_q + j] (causal).
//
// Sparse prefill (`sparse`, honoured by the CPU and CUDA backends): query rows at positions below
// sparse_dense_from attend only to a block pattern of keys estimated from this call's last queries
// of the sequence (kernels/cpu/sparse_prefill.h); not combined with per-head lengths.
//
// Per-head lengths (head-wise eviction, AdaKV): when hole_begin is set, KV
// head g holds valid keys only in slots [0, hole_begin[g]) and
// [hole_end, kv_len); its slots [hole_begin[g], hole_end) are padding that
// attention skips (the layer's pages hold the longest head's count); both
// the CPU and the CUDA backend honour it.
// Block-sparse prefill attention: keys in blocks of 64 (the CPU kernel's key
// block). A sparse row of query head h attends to the first sink_blocks
// blocks, its own and the local_blocks - 1 blocks before it, and the
// top_blocks blocks with the most attention mass from head h's last
// estimate_rows queries of the call. The prompt's last dense_rows rows (the
// eviction policies' observation window) attend to every key (the model sets
// AttentionSeq::sparse_dense_from). top_blocks >= the number of blocks makes
// the pattern dense, and the result bit-identical to dense.
struct SparsePrefill {
  static constexpr int32_t kBlock = 64;
  int32_t top_blocks = 16;
  int32_t local_blocks = 2;
  int32_t sink_blocks = 1;
  int32_t estimate_rows = 64;
  int32_t dense_rows = 64;
};

struct AttentionSeq {
  int32_t q_begin = 0;
  int32_t num_q = 0;
  int32_t kv_len = 0;
  float* const* pages = nullptr;        // [ceil(kv_len / block_size)] page base addresses
  const int32_t* hole_begin = nullptr;  // [Hkv] or null (no padding)
  int32_t hole_end = 0;
  const SparsePrefill* sparse = nullptr;  // null: dense
  int32_t sparse_dense_from = 0;          // rows at this position and later are dense
};

// Where one new token's K/V go.
struct KvSlot {
  float* page = nullptr;  // page base address (kernels/kv_dtype.h)
  int32_t row = 0;        // slot within the page, < block_size
};

class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual void* data() = 0;
  virtual size_t size_bytes() const = 0;
  float* floats() { return static_cast<float*>(data()); }
};

class Backend {
 public:
  virtual ~Backend() = default;
  [[nodiscard]] virtual std::string_view name() const = 0;
  // Threads for host-side work that accompanies the device's (eviction
  // scoring on host copies, for instance); null to run it inline.
  virtual ThreadPool* host_pool() { return nullptr; }
  // Whether the host may dereference pointers into backend memory (true for
  // the CPU backend). When false, host-side code (eviction scoring and
  // compaction) moves data only through CopyToHost / CopyFromHost.
  [[nodiscard]] virtual bool host_addressable() const { return true; }
  // Eviction scoring and compaction on the backend's own pages
  // (kernels/layer_eviction.h), or null when the backend has none (the CPU
  // backend: the evictor then runs the engine's reference code on the pages).
  virtual LayerEvictionOps* layer_eviction() { return nullptr; }
  // OK, or the first error of an operation that could not report one itself
  // (the operations below return void): a device backend's launch failure,
  // scratch allocation failure or sticky device error. Once not OK it stays
  // so, and every later result is unspecified: the model checks it after
  // each layer and fails the step (kernels/cuda/cuda_backend.h).
  [[nodiscard]] virtual absl::Status status() const { return absl::OkStatus(); }

  // Errors: ResourceExhausted when memory is short.
  virtual absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) = 0;
  // Prepares W [rows][cols] stored as `type` in host memory `host` (which
  // outlives the backend, e.g. an mmapped GGUF). The backend may use it in
  // place or convert it to a faster layout.
  // Errors: Unimplemented for types it cannot multiply.
  virtual absl::StatusOr<Matrix> PrepareMatrix(GgmlType type, int64_t rows, int64_t cols,
                                               const void* host) = 0;
  // A vector (norm weight, bias) of n elements converted to f32.
  virtual absl::StatusOr<const float*> PrepareVector(GgmlType type, int64_t n,
                                                     const void* host) = 0;
  // Copies n floats from backend memory to host memory.
  virtual void CopyToHost(const float* src, float* dst, size_t n) = 0;
  virtual void CopyFromHost(const float* src, float* dst, size_t n) = 0;
  // dst[0..n) = src[0..n), both in backend memory.
  virtual void CopyDevice(const float* src, float* dst, size_t n) = 0;
  // dst[i][width] = src[rows[i]][width] for i < num_rows; rows[] in host memory.
  virtual void GatherRows(const float* src, const int64_t* rows, int64_t num_rows, int64_t width,
                          float* dst) = 0;

  // y[m][w.rows] = x[m][w.cols] · Wᵀ
  virtual void MatMul(const Matrix& w, const float* x, int64_t m, float* y) = 0;
  // out[m][D] = table row ids[i] (any GgmlType the backend accepts in PrepareMatrix)
  virtual void Embedding(const Matrix& table, const int32_t* ids, int64_t m, float* out) = 0;
  // y[m][n] = x / rms(x) * weight
  virtual void RmsNorm(const float* x, const float* weight, int64_t m, int64_t n, float eps,
                       float* y) = 0;
  // x[m][n] += bias[n]
  virtual void AddBias(float* x, const float* bias, int64_t m, int64_t n) = 0;
  // x[i] += y[i]
  virtual void Add(float* x, const float* y, int64_t n) = 0;
  // x [m][heads][d] rotated in place at positions[m].
  virtual void Rope(float* x, const int32_t* positions, int64_t m, int32_t heads, int32_t head_dim,
                    const RopeParams& params) = 0;
  // gate[i] = silu(gate[i]) * up[i]
  virtual void SwiGlu(float* gate, const float* up, int64_t n) = 0;
  // Writes k, v [m][Hkv][d] into slots[m] of pages laid out as `kv`,
  // rounding each (token, head) row to kv.dtype (EncodeKvRow's bytes).
  virtual void StoreKv(const float* k, const float* v, const KvSlot* slots, int64_t m,
                       const KvPageLayout& kv) = 0;
  // out [T][H][d] = causal softmax(q kᵀ · scale) v over each sequence's pages
  // (laid out as `kv`, read in their stored dtype).
  // Query head h reads KV head h / (H / Hkv).
  virtual void Attention(const float* q, absl::Span<const AttentionSeq> seqs, int32_t heads,
                         const KvPageLayout& kv, float scale, float* out) = 0;
  // Whether StoreKv/Attention accept pages of `dtype`.
  [[nodiscard]] virtual bool SupportsKvDtype(KvDtype dtype) const = 0;
};

}  // namespace restkv::kernels
