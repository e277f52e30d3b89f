// Paged causal attention with grouped-query heads (contract: launch.h,
// AttentionLaunch; semantics: Backend::Attention in kernels/backend.h).
//
// One thread block = one tile of kAttentionRowsPerTile (query token, group
// head) rows of one sequence x one KV head x one split of the key range. The
// G query heads that share a KV head sit in the same tile, so every K/V tile
// loaded into shared memory serves all of them. Keys stream through shared
// memory kAttentionKeysPerTile at a time with an online (running max / sum)
// softmax, flash-attention style, so no [rows][kv_len] score buffer exists and
// a 128k-token prompt needs only O(tile) memory. Arithmetic is fp32 SIMT.
// Pages are read in their stored dtype (f32, f16, bf16, q8_0; the kernel is
// instantiated per dtype) and widened to fp32 as the K/V tile is loaded into
// shared memory, so a 16-bit cache moves half the bytes and q8_0 a quarter.
//
// Split-K (decode): when there are too few tiles to fill the GPU, each tile's
// key range is cut into num_splits chunks computed by separate blocks; each
// writes its unnormalised output and (max, sum) per row, and CombineKernel
// merges them: M = max m_s, out = sum_s e^(m_s-M) o_s / sum_s e^(m_s-M) l_s.
//
// Per-head lengths (AdaKV): a KV head's padding slots [hole_b, hole_e) are
// masked like future keys, and a key tile wholly inside them is skipped (the
// condition is the block's, so every thread skips it together).
//
// Sparse prefill: a row of a sparse sequence below its dense_from position
// sees only the key blocks of its head's pattern (sparse_prefill.cu) and its
// local band; a key tile no row of the block sees is skipped
// (__syncthreads_count, so the decision is the block's).
//
// Thread layout (128 threads): thread = row r (tid / 8) x lane8 (tid % 8).
// A row's 8 threads are 8 consecutive lanes of one warp, so row-wise
// reductions are 3 xor-shuffles and the row's probabilities in shared memory
// need only __syncwarp. Scores: lane8 owns keys lane8 + 8i (i < 4) of the
// tile; output: lane8 owns dims lane8 + 8i (i < d/8). K and Q rows are padded
// to d+1 floats so the 8 keys (or 4 rows) a warp reads hit distinct banks.
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/kernel_launch.h"
#include "kernels/cuda/launch.h"

namespace restkv::kernels::cuda {
namespace {

constexpr int kRows = kAttentionRowsPerTile;  // 16
constexpr int kKeys = kAttentionKeysPerTile;  // 32
constexpr int kLanesPerRow = 8;
constexpr int kThreads = kRows * kLanesPerRow;      // 128
constexpr int kKeysPerLane = kKeys / kLanesPerRow;  // 4
static_assert(kSparseBlock % kKeys == 0, "a key tile lies inside one sparse block");
static_assert(kKeys % kLanesPerRow == 0, "keys split evenly over a row's lanes");
static_assert(kThreads % 32 == 0 && 32 % kLanesPerRow == 0, "a row's lanes stay in one warp");

// Keys [begin, end) of split `split` for a block whose rows see keys < block_end.
__device__ __forceinline__ void SplitRange(int32_t block_end, int32_t num_splits, int32_t split,
                                           int32_t* begin, int32_t* end) {
  int32_t chunk = (block_end + num_splits - 1) / num_splits;
  chunk = (chunk + kKeys - 1) / kKeys * kKeys;  // whole key tiles per split
  *begin = min(block_end, split * chunk);
  *end = min(block_end, *begin + chunk);
}

// Elements kk .. kk+3 of the stored row at byte `row` of a page, as f32
// (times `scale` for q8_0). kk is a multiple of 4, so every load is aligned
// (rows are whole multiples of 16 bytes in f32, 8 in 16-bit, 4 in q8_0).
template <KvDtype DT>
__device__ __forceinline__ float4 LoadKv4(const uint8_t* row, int kk, float scale) {
  if constexpr (DT == KvDtype::kF32) {
    return *reinterpret_cast<const float4*>(row + 4 * kk);
  } else if constexpr (DT == KvDtype::kF16) {
    const ushort4 h = *reinterpret_cast<const ushort4*>(row + 2 * kk);
    return make_float4(__half2float(__ushort_as_half(h.x)), __half2float(__ushort_as_half(h.y)),
                       __half2float(__ushort_as_half(h.z)), __half2float(__ushort_as_half(h.w)));
  } else if constexpr (DT == KvDtype::kBf16) {
    const ushort4 h = *reinterpret_cast<const ushort4*>(row + 2 * kk);
    return make_float4(__uint_as_float(static_cast<uint32_t>(h.x) << 16),
                       __uint_as_float(static_cast<uint32_t>(h.y) << 16),
                       __uint_as_float(static_cast<uint32_t>(h.z) << 16),
                       __uint_as_float(static_cast<uint32_t>(h.w) << 16));
  } else {
    const char4 q = *reinterpret_cast<const char4*>(row + kk);
    return make_float4(static_cast<float>(q.x) * scale, static_cast<float>(q.y) * scale,
                       static_cast<float>(q.z) * scale, static_cast<float>(q.w) * scale);
  }
}

template <int D, KvDtype DT>
__global__ void __launch_bounds__(kThreads) PagedAttentionKernel(AttentionLaunch a) {
  static_assert(D % (4 * kLanesPerRow) == 0, "float4 loads and 8 lanes per row");
  constexpr int kDimsPerLane = D / kLanesPerRow;
  __shared__ float q_s[kRows][D + 1];
  __shared__ float k_s[kKeys][D + 1];
  __shared__ __align__(16) float v_s[kKeys][D];
  __shared__ float p_s[kRows][kKeys];

  const DeviceAttentionTile tile = a.tiles[blockIdx.x];
  const int32_t g = static_cast<int32_t>(blockIdx.y);  // KV head
  const int32_t split = static_cast<int32_t>(blockIdx.z);
  const DeviceAttentionSeq seq = a.seqs[tile.seq];
  const int32_t group = a.heads / a.kv_heads;
  const int32_t total_rows = seq.num_q * group;
  const int32_t tid = static_cast<int32_t>(threadIdx.x);
  const int32_t r = tid / kLanesPerRow;
  const int32_t lane8 = tid % kLanesPerRow;
  const int32_t row = tile.first_row + r;
  const bool row_valid = row < total_rows;
  const int32_t j = row_valid ? row / group : 0;  // query index within the sequence
  const int32_t h = g * group + (row_valid ? row % group : 0);
  const int32_t past = seq.kv_len - seq.num_q;  // keys before the first query
  const int32_t last_key = past + j;            // causal limit of this row
  const int32_t hole_b = seq.hole_index >= 0 ? a.hole_begin[seq.hole_index + g] : 0;
  const int32_t hole_e = seq.hole_index >= 0 ? seq.hole_end : 0;
  // Sparse prefill: this row's pattern, or every key (keep == nullptr).
  const bool sparse_seq = a.sparse_keep != nullptr && seq.sparse_index >= 0;
  const bool sparse_row = sparse_seq && row_valid && last_key < seq.sparse_dense_from;
  const uint8_t* keep =
      sparse_row ? a.sparse_keep + seq.sparse_index +
                       static_cast<int64_t>(h) * ((seq.kv_len + kSparseBlock - 1) / kSparseBlock)
                 : nullptr;
  const int32_t local_from = sparse_row ? last_key / kSparseBlock - seq.sparse_local + 1 : 0;

  // Keys any row of the block sees: up to the last valid row's limit.
  const int32_t last_row = min(tile.first_row + kRows, total_rows) - 1;
  const int32_t block_end = past + last_row / group + 1;
  int32_t k_begin = 0, k_end = 0;
  SplitRange(block_end, a.num_splits, split, &k_begin, &k_end);

  // Query rows of the tile (zeros for rows past the sequence).
  for (int32_t e = tid; e < kRows * D; e += kThreads) {
    const int32_t rr = e / D, kk = e % D;
    const int32_t row_e = tile.first_row + rr;
    float val = 0.0f;
    if (row_e < total_rows) {
      const int64_t token = seq.q_begin + row_e / group;
      const int32_t head = g * group + row_e % group;
      val = a.q[(token * a.heads + head) * D + kk];
    }
    q_s[rr][kk] = val;
  }

  float o[kDimsPerLane];
#pragma unroll
  for (int i = 0; i < kDimsPerLane; ++i) o[i] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  for (int32_t t0 = k_begin; t0 < k_end; t0 += kKeys) {
    if (t0 >= hole_b && t0 + kKeys <= hole_e) continue;  // all padding
    // A tile lies inside one sparse block (kKeys divides kSparseBlock).
    const bool tile_seen =
        keep == nullptr || keep[t0 / kSparseBlock] != 0 || t0 / kSparseBlock >= local_from;
    if (sparse_seq && __syncthreads_count(row_valid && tile_seen) == 0) continue;
    __syncthreads();  // Q is loaded; the previous tile's K/V/P reads are done
    // K/V tile: 4-element loads, consecutive threads along d (coalesced),
    // widened to f32.
    for (int32_t e = tid; e < kKeys * (D / 4); e += kThreads) {
      const int32_t c = e / (D / 4), kk = (e % (D / 4)) * 4;
      const int32_t key = t0 + c;
      float4 kv4 = make_float4(0.f, 0.f, 0.f, 0.f), vv4 = kv4;
      if (key < k_end && (key < hole_b || key >= hole_e)) {
        const uint8_t* page =
            reinterpret_cast<const uint8_t*>(a.page_table[seq.page_begin + key / a.block_size]);
        const int64_t r = static_cast<int64_t>(g) * a.block_size + key % a.block_size;
        float k_scale = 1.0f, v_scale = 1.0f;
        if constexpr (DT == KvDtype::kQ8_0) {
          k_scale = reinterpret_cast<const float*>(page + a.kv.k_scale_offset)[r];
          v_scale = reinterpret_cast<const float*>(page + a.kv.v_scale_offset)[r];
        }
        kv4 = LoadKv4<DT>(page + r * a.kv.row_bytes, kk, k_scale);
        vv4 = LoadKv4<DT>(page + a.kv.v_offset + r * a.kv.row_bytes, kk, v_scale);
      }
      k_s[c][kk] = kv4.x;
      k_s[c][kk + 1] = kv4.y;
      k_s[c][kk + 2] = kv4.z;
      k_s[c][kk + 3] = kv4.w;
      *reinterpret_cast<float4*>(&v_s[c][kk]) = vv4;
    }
    __syncthreads();

    float s[kKeysPerLane];
    float tile_max = -INFINITY;
#pragma unroll
    for (int i = 0; i < kKeysPerLane; ++i) {
      const int32_t c = lane8 + kLanesPerRow * i;
      const int32_t key = t0 + c;
      float dot = 0.0f;
#pragma unroll 8
      for (int kk = 0; kk < D; ++kk) dot += q_s[r][kk] * k_s[c][kk];
      const bool visible = row_valid && key < k_end && key <= last_key &&
                           (key < hole_b || key >= hole_e) && tile_seen;
      s[i] = visible ? dot * a.scale : -INFINITY;
      tile_max = fmaxf(tile_max, s[i]);
    }
#pragma unroll
    for (int off = kLanesPerRow / 2; off > 0; off >>= 1) {
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, off));
    }
    const float new_m = fmaxf(m, tile_max);
    // A row with nothing visible yet (padding rows) keeps m = -inf, l = 0.
    const bool any = new_m != -INFINITY;
    const float corr = any ? expf(m - new_m) : 1.0f;
    float psum = 0.0f;
#pragma unroll
    for (int i = 0; i < kKeysPerLane; ++i) {
      const float p = (any && s[i] != -INFINITY) ? expf(s[i] - new_m) : 0.0f;
      p_s[r][lane8 + kLanesPerRow * i] = p;
      psum += p;
    }
#pragma unroll
    for (int off = kLanesPerRow / 2; off > 0; off >>= 1) {
      psum += __shfl_xor_sync(0xffffffffu, psum, off);
    }
    l = l * corr + psum;
    m = new_m;
    __syncwarp();  // the row's probabilities were written by lanes of this warp
#pragma unroll
    for (int i = 0; i < kDimsPerLane; ++i) o[i] *= corr;
    for (int c = 0; c < kKeys; ++c) {
      const float p = p_s[r][c];
#pragma unroll
      for (int i = 0; i < kDimsPerLane; ++i) o[i] += p * v_s[c][lane8 + kLanesPerRow * i];
    }
  }

  if (!row_valid) return;  // no barrier follows
  const int64_t token = seq.q_begin + j;
  const int64_t out_row = token * a.heads + h;
  if (a.num_splits == 1) {
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int i = 0; i < kDimsPerLane; ++i)
      a.out[out_row * D + lane8 + kLanesPerRow * i] = o[i] * inv;
    return;
  }
  const int64_t part_row = static_cast<int64_t>(split) * a.num_tokens * a.heads + out_row;
#pragma unroll
  for (int i = 0; i < kDimsPerLane; ++i)
    a.partial_o[part_row * D + lane8 + kLanesPerRow * i] = o[i];
  if (lane8 == 0) {
    a.partial_ml[part_row * 2] = m;
    a.partial_ml[part_row * 2 + 1] = l;
  }
}

// Merges the splits of the rows of one (tile, KV head): same grid x/y and
// thread layout as the attention kernel, so exactly the rows it wrote.
template <int D>
__global__ void __launch_bounds__(kThreads) CombineSplitsKernel(AttentionLaunch a) {
  constexpr int kDimsPerLane = D / kLanesPerRow;
  const DeviceAttentionTile tile = a.tiles[blockIdx.x];
  const int32_t g = static_cast<int32_t>(blockIdx.y);
  const DeviceAttentionSeq seq = a.seqs[tile.seq];
  const int32_t group = a.heads / a.kv_heads;
  const int32_t r = static_cast<int32_t>(threadIdx.x) / kLanesPerRow;
  const int32_t lane8 = static_cast<int32_t>(threadIdx.x) % kLanesPerRow;
  const int32_t row = tile.first_row + r;
  if (row >= seq.num_q * group) return;
  const int64_t token = seq.q_begin + row / group;
  const int64_t out_row = token * a.heads + g * group + row % group;
  const int64_t split_stride = static_cast<int64_t>(a.num_tokens) * a.heads;
  float big_m = -INFINITY;
  for (int32_t s = 0; s < a.num_splits; ++s) {
    big_m = fmaxf(big_m, a.partial_ml[(s * split_stride + out_row) * 2]);
  }
  float o[kDimsPerLane];
#pragma unroll
  for (int i = 0; i < kDimsPerLane; ++i) o[i] = 0.0f;
  float l = 0.0f;
  if (big_m != -INFINITY) {
    for (int32_t s = 0; s < a.num_splits; ++s) {
      const int64_t part_row = s * split_stride + out_row;
      const float ms = a.partial_ml[part_row * 2];
      if (ms == -INFINITY) continue;  // an empty split
      const float w = expf(ms - big_m);
      l += w * a.partial_ml[part_row * 2 + 1];
#pragma unroll
      for (int i = 0; i < kDimsPerLane; ++i) {
        o[i] += w * a.partial_o[part_row * D + lane8 + kLanesPerRow * i];
      }
    }
  }
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
  for (int i = 0; i < kDimsPerLane; ++i) a.out[out_row * D + lane8 + kLanesPerRow * i] = o[i] * inv;
}

template <int D, KvDtype DT>
absl::Status Launch(const AttentionLaunch& a, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(a.num_tiles), static_cast<unsigned>(a.kv_heads),
                  static_cast<unsigned>(a.num_splits));
  void (*const kernel)(AttentionLaunch) = PagedAttentionKernel<D, DT>;  // one macro argument
  RESTKV_LAUNCH(kernel, grid, kThreads, 0, stream)(a);
  if (absl::Status s = CheckLaunch("PagedAttentionKernel"); !s.ok() || a.num_splits == 1) return s;
  const dim3 grid2(static_cast<unsigned>(a.num_tiles), static_cast<unsigned>(a.kv_heads));
  RESTKV_LAUNCH(CombineSplitsKernel<D>, grid2, kThreads, 0, stream)(a);
  return CheckLaunch("CombineSplitsKernel");
}

// The one runtime-to-template dispatch of the page dtype.
template <int D>
absl::Status LaunchForDtype(const AttentionLaunch& a, cudaStream_t stream) {
  switch (a.kv.dtype) {
    case KvDtype::kF32:
      return Launch<D, KvDtype::kF32>(a, stream);
    case KvDtype::kF16:
      return Launch<D, KvDtype::kF16>(a, stream);
    case KvDtype::kBf16:
      return Launch<D, KvDtype::kBf16>(a, stream);
    case KvDtype::kQ8_0:
      return Launch<D, KvDtype::kQ8_0>(a, stream);
  }
  return absl::InvalidArgumentError("paged attention: unknown KV dtype");
}

}  // namespace

absl::Status LaunchPagedAttention(const AttentionLaunch& args, cudaStream_t stream) {
  if (!AttentionSupportsHeadDim(args.head_dim)) {
    return absl::InvalidArgumentError("paged attention is built for head_dim 64 and 128 only");
  }
  if (args.num_splits < 1 || args.kv_heads <= 0 || args.heads % args.kv_heads != 0) {
    return absl::InvalidArgumentError("paged attention: bad split count or head grouping");
  }
  const DeviceKvLayout& kv = args.kv;
  if (kv.kv_heads != args.kv_heads || kv.head_dim != args.head_dim ||
      kv.block_size != args.block_size ||
      kv.row_bytes != static_cast<int64_t>(kv.head_dim) * KvElementBytes(kv.dtype)) {
    return absl::InvalidArgumentError(
        "paged attention: the KV page layout does not match the call");
  }
  if (args.num_tiles <= 0) return absl::OkStatus();
  return args.head_dim == 64 ? LaunchForDtype<64>(args, stream) : LaunchForDtype<128>(args, stream);
}

}  // namespace restkv::kernels::cuda
