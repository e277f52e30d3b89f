// Launchers of the CUDA kernels behind CudaBackend (cuda_backend.h).
//
// This header is the seam between host C++ and the .cu files: plain types
// and absl::Status only, so the same declarations serve nvcc builds and the
// host emulation (kernels/cuda/emulation/), whose tests call these launchers
// directly. Every launcher enqueues work on `stream` and returns at once;
// every pointer is device memory unless its comment says otherwise.
//
// Errors: every launcher returns the launch's status (CheckLaunch right
// after each launch, launch_status.h); a shape the kernels are not built
// for (e.g. an attention head_dim other than 64 / 128) is InvalidArgument
// and launches nothing. Other shape checks are the caller's (CudaBackend).
//
// Layouts follow kernels/backend.h and kernels/kv_dtype.h: a KV page is
// K [Hkv][block][d] then V [Hkv][block][d] in the page dtype (f32, f16,
// bf16 or q8_0), then for q8_0 the f32 scales of K and V [Hkv][block].
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/kv_dtype.h"

struct cublasContext;  // cuBLAS's opaque handle (cublas_api.h)

namespace restkv::kernels::cuda {

// bf16 is carried as its 16 raw bits on the host side of the seam.
using Bf16Bits = uint16_t;

// dst[i] = bf16(src[i]) (round to nearest even), i < n.
absl::Status LaunchF32ToBf16(const float* src, int64_t n, Bf16Bits* dst, cudaStream_t stream);

// out[i][cols] = f32(table[ids[i]][cols]).
absl::Status LaunchEmbedding(const Bf16Bits* table, int64_t cols, const int32_t* ids, int64_t m,
                             float* out, cudaStream_t stream);

// y[m][n] = x / rms(x) * weight; y may equal x.
absl::Status LaunchRmsNorm(const float* x, const float* weight, int64_t m, int64_t n, float eps,
                           float* y, cudaStream_t stream);

// x[m][n] += bias[n]
absl::Status LaunchAddBias(float* x, const float* bias, int64_t m, int64_t n, cudaStream_t stream);
// x[i] += y[i]
absl::Status LaunchAdd(float* x, const float* y, int64_t n, cudaStream_t stream);
// gate[i] = silu(gate[i]) * up[i]
absl::Status LaunchSwiGlu(float* gate, const float* up, int64_t n, cudaStream_t stream);

struct RopeLaunchParams {
  bool neox = false;         // kNeox: pairs (i, i + rot/2); else (2i, 2i + 1)
  int32_t rot_dims = 0;      // even, <= head_dim
  float theta_scale = 1.0f;  // base^(-2/rot), computed on the host as the CPU does
  float position_scale = 1.0f;
  const float* freq_factors = nullptr;  // [rot/2] device, or null
};
// x [m][heads][head_dim] rotated in place at positions[m].
absl::Status LaunchRope(float* x, const int32_t* positions, int64_t m, int32_t heads,
                        int32_t head_dim, const RopeLaunchParams& params, cudaStream_t stream);

// Mirrors kernels::KvSlot (same layout; cuda_backend.cc static_asserts it).
struct DeviceKvSlot {
  float* page;  // page base address
  int32_t row;
};

// A KvPageLayout with its byte offsets computed on the host, as the kernels
// read it (the layout's methods are host code).
struct DeviceKvLayout {
  KvDtype dtype = KvDtype::kF32;
  int32_t kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 0;
  int64_t row_bytes = 0;       // one (token, head) row of K or V
  int64_t v_offset = 0;        // V rows
  int64_t k_scale_offset = 0;  // q8_0: f32 [Hkv][block] K scales
  int64_t v_scale_offset = 0;  // q8_0: V scales
};
inline DeviceKvLayout ToDeviceKvLayout(const KvPageLayout& kv) {
  return {kv.dtype,       kv.kv_heads,   kv.head_dim,         kv.block_size,
          kv.row_bytes(), kv.v_offset(), kv.k_scale_offset(), kv.v_scale_offset()};
}

// Writes k, v [m][Hkv][d] into slots[m] (slots in device memory), each
// (token, head) row rounded to kv.dtype exactly as EncodeKvRow does on the
// host (the same bytes for the same inputs).
absl::Status LaunchStoreKv(const float* k, const float* v, const DeviceKvSlot* slots, int64_t m,
                           const DeviceKvLayout& kv, cudaStream_t stream);

// dst[i][width] = src[rows[i]][width] (rows in device memory).
absl::Status LaunchGatherRows(const float* src, const int64_t* rows, int64_t num_rows,
                              int64_t width, float* dst, cudaStream_t stream);

// ---- Paged attention --------------------------------------------------------

// One sequence of an attention call, with its block table flattened into
// one device array of page pointers (`page_table[page_begin + i]`).
// Per-head lengths (AdaKV; Backend::Attention's hole_begin): with
// hole_index >= 0, KV head g skips keys [hole_begin[hole_index + g],
// hole_end) (AttentionLaunch::hole_begin); -1 = no padding.
// Sparse prefill (Backend::Attention's `sparse`): with sparse_index >= 0, a
// query row of head h at a position below sparse_dense_from attends only to
// the key blocks (of SparsePrefill::kBlock) flagged in
// AttentionLaunch::sparse_keep[sparse_index + h * ceil(kv_len / kBlock)],
// plus its own block and the sparse_local - 1 before it.
struct DeviceAttentionSeq {
  int32_t q_begin;
  int32_t num_q;
  int32_t kv_len;
  int32_t page_begin;
  int32_t hole_index = -1;
  int32_t hole_end = 0;
  int32_t sparse_index = -1;
  int32_t sparse_dense_from = 0;
  int32_t sparse_local = 0;
};

// A unit of work: `kRowsPerTile` consecutive (query token, group head) rows
// of one sequence, row r = token * G + group head, starting at first_row.
struct DeviceAttentionTile {
  int32_t seq;
  int32_t first_row;
};

// Rows of one attention tile (query-token x group-head pairs): the host
// splits every sequence into ceil(num_q * G / kAttentionRowsPerTile) tiles.
inline constexpr int32_t kAttentionRowsPerTile = 16;
// Keys per shared-memory tile; also the granularity of split-K ranges.
inline constexpr int32_t kAttentionKeysPerTile = 32;

// Head dims the attention kernels are instantiated for.
inline bool AttentionSupportsHeadDim(int32_t head_dim) { return head_dim == 64 || head_dim == 128; }

struct AttentionLaunch {
  const float* q = nullptr;                    // [T][H][d]
  const DeviceAttentionSeq* seqs = nullptr;    // device
  float* const* page_table = nullptr;          // device
  const DeviceAttentionTile* tiles = nullptr;  // device, num_tiles entries
  const int32_t* hole_begin = nullptr;         // device; null when no sequence has holes
  const uint8_t* sparse_keep = nullptr;        // device; null when no sequence is sparse
  int32_t num_tiles = 0;
  int32_t heads = 0;
  int32_t kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 0;
  DeviceKvLayout kv;  // page layout and dtype (kv_heads, head_dim, block_size as above)
  float scale = 1.0f;
  // Split-K: each (tile, kv head) is computed as num_splits independent
  // ranges of keys, merged by a second kernel. 1 = no split, out written
  // directly. With num_splits > 1, partial_o [num_splits][T][H][d] and
  // partial_ml [num_splits][T][H][2] are scratch (device).
  int32_t num_splits = 1;
  int32_t num_tokens = 0;  // T, rows of q/out
  float* partial_o = nullptr;
  float* partial_ml = nullptr;
  float* out = nullptr;  // [T][H][d]
};
absl::Status LaunchPagedAttention(const AttentionLaunch& args, cudaStream_t stream);

// ---- Sparse prefill pattern -------------------------------------------------

// The block pattern of one sequence's sparse prefill rows (the contract is
// kernels::SparsePrefill in kernels/backend.h; the CPU reference is
// kernels/cpu/sparse_prefill.h): per query head, the causal softmax of the
// sequence's last estimate_rows queries summed per key block of
// kSparseBlock, the top_blocks blocks with the most mass and the first
// sink_blocks flagged in keep [heads][ceil(kv_len / kSparseBlock)]. Mass is
// accumulated in f32 (the CPU's in f64), so blocks whose mass ties to
// rounding may be picked differently. `mass` is scratch of keep's shape.
// The queries are rows [q_begin, q_begin + num_q) of q [T][heads][d], the
// last num_q of the kv_len keys in the pages of `seq`.
inline constexpr int32_t kSparseBlock = 64;
struct SparsePatternLaunch {
  const float* q = nullptr;
  DeviceAttentionSeq seq{};            // host copy: q_begin, num_q, kv_len, page_begin
  float* const* page_table = nullptr;  // device, as AttentionLaunch's
  int32_t heads = 0;
  DeviceKvLayout kv;
  float scale = 1.0f;
  int32_t estimate_rows = 0;
  int32_t top_blocks = 0;
  int32_t sink_blocks = 0;
  float* mass = nullptr;    // device scratch [heads][blocks]
  uint8_t* keep = nullptr;  // device [heads][blocks]
};
absl::Status LaunchSparsePattern(const SparsePatternLaunch& args, cudaStream_t stream);

// ---- GEMM seam --------------------------------------------------------------

// cuBLAS's handle type (cublasHandle_t), without including cuBLAS here.
using BlasHandle = ::cublasContext*;

// y[m][rows] = x[m][cols] · Wᵀ: W bf16 [rows][cols] row-major, x bf16
// [m][cols], y f32, fp32 accumulation. On a GPU this is cuBLAS
// (gemm_cublas.cc, tensor cores); the host emulation serves it with the CPU
// GEMM (emulation/emulated_gemm.cc), so code above the seam runs in both.
// Errors: InvalidArgument for non-positive or > INT32_MAX sizes; Internal
// for a cuBLAS failure.
absl::Status GemmBf16(BlasHandle blas, const Bf16Bits* w, int64_t rows, int64_t cols,
                      const Bf16Bits* x, int64_t m, float* y, cudaStream_t stream);

}  // namespace restkv::kernels::cuda
