#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/check.h"
#include "kernels/cpu/sparse_prefill.h"
#include "kernels/cpu/vec_math.h"

#if defined(__AVX512F__)
// GCC 12's AVX-512 headers build some intrinsics from _mm512_undefined_*(),
// which its flow analysis reports as (maybe-)uninitialised (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace restkv::kernels::cpu {

namespace {

// Byte address of row (kvh, slot) of K (or of V, with `v` true) in a page.
inline const uint8_t* KvRow(const float* page, const KvPageLayout& kv, int32_t kvh, int32_t slot,
                            bool v) {
  return reinterpret_cast<const uint8_t*>(page) + (v ? kv.v_offset() : 0) +
         kv.RowIndex(kvh, slot) * kv.row_bytes();
}

// The q8_0 scale of row (kvh, slot) of K (or V); 1 for other dtypes.
inline float KvScale(const float* page, const KvPageLayout& kv, int32_t kvh, int32_t slot, bool v) {
  if (!kv.has_scales()) return 1.0f;
  const auto* base = reinterpret_cast<const uint8_t*>(page);
  return reinterpret_cast<const float*>(
      base + (v ? kv.v_scale_offset() : kv.k_scale_offset()))[kv.RowIndex(kvh, slot)];
}

// Attention of one query row and head over keys [0, visible) of KV head
// `kvh`: exact softmax in fp32, scores kept in `scores`; each K/V row is
// converted to f32 into `row` [d] as it is visited.
// Slots [hole_begin, hole_end) are skipped (per-head padding; an empty
// range when hole_begin >= hole_end).
// Sparse prefill: with `keep` set, key blocks of kKeyBlock below
// local_from whose flag is 0 are skipped too.
void AttendGeneric(const float* qv, const float* const* pages, int32_t kvh, int32_t visible,
                   const KvPageLayout& kv, float scale, float* scores, float* row, float* o,
                   int32_t hole_begin = 0, int32_t hole_end = 0, const uint8_t* keep = nullptr,
                   int32_t local_from = 0);

// Keys per block of the blocked (online) softmax. Block boundaries sit at
// absolute key positions, so a query row's arithmetic is the same whether it
// is computed alone (decode) or in a tile of prefill rows (recompute after
// preemption reproduces decode exactly). Also the block of sparse prefill.
constexpr int32_t kKeyBlock = 64;
static_assert(kKeyBlock == SparsePrefill::kBlock);

void AttendGeneric(const float* qv, const float* const* pages, int32_t kvh, int32_t visible,
                   const KvPageLayout& kv, float scale, float* scores, float* row, float* o,
                   int32_t hole_begin, int32_t hole_end, const uint8_t* keep, int32_t local_from) {
  const int32_t head_dim = kv.head_dim, block_size = kv.block_size;
  float max_score = -std::numeric_limits<float>::infinity();
  // The first valid slot at or after t: past the hole, past skipped blocks.
  auto valid_from = [&](int32_t t) {
    for (;;) {
      if (t >= hole_begin && t < hole_end) t = hole_end;
      const int32_t b = t / kKeyBlock;
      if (keep == nullptr || t >= visible || b >= local_from || keep[b] != 0) return t;
      t = (b + 1) * kKeyBlock;
    }
  };
  auto next = [&](int32_t t) { return valid_from(t + 1); };
  const int32_t first = valid_from(0);
  for (int32_t t = first; t < visible; t = next(t)) {
    const float* page = pages[t / block_size];
    const int32_t slot = t % block_size;
    DecodeKvRow(kv.dtype, KvRow(page, kv, kvh, slot, false), KvScale(page, kv, kvh, slot, false),
                head_dim, row);
    scores[t] = DotF32(qv, row, head_dim) * scale;
    max_score = std::max(max_score, scores[t]);
  }
  float sum = 0.0f;
  for (int32_t t = first; t < visible; t = next(t)) {
    scores[t] = std::exp(scores[t] - max_score);
    sum += scores[t];
  }
  std::fill(o, o + head_dim, 0.0f);
  const float inv = 1.0f / sum;
  for (int32_t t = first; t < visible; t = next(t)) {
    const float* page = pages[t / block_size];
    const int32_t slot = t % block_size;
    DecodeKvRow(kv.dtype, KvRow(page, kv, kvh, slot, true), KvScale(page, kv, kvh, slot, true),
                head_dim, row);
    AxpyF32(scores[t] * inv, row, o, head_dim);
  }
}

// Per-row running state of the online softmax.
struct RowState {
  float max = -std::numeric_limits<float>::infinity();
  float sum = 0.0f;
};

#if defined(__AVX512F__)
// e^x for x <= 0 in 16 lanes, within ~2 ulp of expf: x = n·ln2 + r with
// |r| <= ln2/2, e^r by its degree-6 Taylor polynomial, 2^n by scalef. The
// scalar expf per key was most of the time of long-context attention.
inline __m512 ExpNonPositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// scores[t] = e^(scores[t] - max) for t < n; returns their sum.
inline float SoftmaxNumerators(float* scores, int32_t n, float max_score) {
  const __m512 m = _mm512_set1_ps(max_score);
  __m512 sum = _mm512_setzero_ps();
  int32_t t = 0;
  for (; t + 16 <= n; t += 16) {
    const __m512 e = ExpNonPositive(_mm512_sub_ps(_mm512_loadu_ps(scores + t), m));
    _mm512_storeu_ps(scores + t, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (t < n) {
    const __mmask16 k = static_cast<__mmask16>((1u << (n - t)) - 1);
    const __m512 e = ExpNonPositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, scores + t), m));
    _mm512_mask_storeu_ps(scores + t, k, e);
    sum = _mm512_mask_add_ps(sum, k, sum, e);
  }
  return _mm512_reduce_add_ps(sum);
}

// Lane k of the result is the sum of the 16 lanes of a[k]: three levels of
// in-lane and cross-lane shuffles, 45 instructions for 16 sums instead of a
// horizontal reduction per score.
inline __m512 Sum16(const __m512* a) {
  __m512 b[8];
  for (int i = 0; i < 8; ++i) {
    b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                         _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  }
  __m512 c[4];  // per 128-bit lane: partial sums of keys 4i..4i+3
  for (int i = 0; i < 4; ++i) {
    c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44),
                         _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xee));
  }
  const __m512 d0 =
      _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88), _mm512_shuffle_f32x4(c[0], c[1], 0xdd));
  const __m512 d1 =
      _mm512_add_ps(_mm512_shuffle_f32x4(c[2], c[3], 0x88), _mm512_shuffle_f32x4(c[2], c[3], 0xdd));
  return _mm512_add_ps(_mm512_shuffle_f32x4(d0, d1, 0x88), _mm512_shuffle_f32x4(d0, d1, 0xdd));
}

// Elements 16v .. 16v+15 of a stored K/V row as f32 (without the q8_0
// scale, which the caller applies once per row).
template <KvDtype DT>
inline __m512 LoadRow16(const uint8_t* row, int v) {
  if constexpr (DT == KvDtype::kF32) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + 16 * v);
  } else if constexpr (DT == KvDtype::kF16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * v)));
  } else if constexpr (DT == KvDtype::kBf16) {
    const __m512i w =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 32 * v)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  } else {
    return _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * v))));
  }
}

// Attention of `rows` query vectors that share one KV head, for head_dim =
// 16·NV and pages of dtype DT (rows widened to f32 in registers as they are
// loaded; a q8_0 row's scale multiplies its dot product and its weight). Keys are visited in blocks
// of kKeyBlock; within a block every row scores its visible keys (query in registers, 16 scores per
// reduction), rescales its accumulator to the new running max, and adds its weighted V rows. A
// block's K and V (32 KiB at d = 64) stay in L1 while all rows of the tile pass over them, so long
// contexts stream K/V from memory once per tile instead of once per query row and head.
template <int NV, KvDtype DT>
void AttendTileAvx512(int32_t rows, const float* const* q, float* const* out,
                      const int32_t* visible, const float* const* pages, int32_t kvh,
                      const KvPageLayout& kv, float scale, float* scores, float* acc,
                      RowState* state, const uint8_t* const* keep, const int32_t* local_from) {
  constexpr int64_t kDim = 16 * NV;
  constexpr int64_t kRowBytes = kDim * (DT == KvDtype::kF32 ? 4 : DT == KvDtype::kQ8_0 ? 1 : 2);
  const int32_t block_size = kv.block_size;
  const int64_t head_offset = static_cast<int64_t>(kvh) * block_size * kRowBytes;
  const int64_t page_v_offset = kv.v_offset();
  int32_t max_visible = 0;
  for (int32_t r = 0; r < rows; ++r) {
    max_visible = std::max(max_visible, visible[r]);
    state[r] = RowState{};
    std::fill(acc + r * kDim, acc + (r + 1) * kDim, 0.0f);
  }
  for (int32_t kb = 0; kb < max_visible; kb += kKeyBlock) {
    for (int32_t r = 0; r < rows; ++r) {
      const int32_t n = std::min(kb + kKeyBlock, visible[r]) - kb;
      if (n <= 0) continue;
      // Sparse prefill: a block outside the row's pattern is skipped whole.
      if (keep != nullptr && keep[r] != nullptr && kb / kKeyBlock < local_from[r] &&
          keep[r][kb / kKeyBlock] == 0) {
        continue;
      }
      __m512 qr[NV];
      for (int v = 0; v < NV; ++v) qr[v] = _mm512_loadu_ps(q[r] + 16 * v);
      __m512 max_v = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
      const __m512 scale_v = _mm512_set1_ps(scale);
      // Keys in groups of 16 at absolute positions kb + 16m: 16 dot-product
      // vectors, then one transposing reduction gives their 16 scores.
      for (int32_t i = 0; i < n; i += 16) {
        const int32_t m = std::min(16, n - i);
        int32_t page = (kb + i) / block_size, slot = (kb + i) % block_size;
        __m512 dots[16];
        for (int32_t e = 0; e < m; ++e) {
          const uint8_t* k =
              reinterpret_cast<const uint8_t*>(pages[page]) + head_offset + slot * kRowBytes;
          __m512 dot = _mm512_mul_ps(qr[0], LoadRow16<DT>(k, 0));
          for (int v = 1; v < NV; ++v) dot = _mm512_fmadd_ps(qr[v], LoadRow16<DT>(k, v), dot);
          if constexpr (DT == KvDtype::kQ8_0) {
            dot = _mm512_mul_ps(dot, _mm512_set1_ps(KvScale(pages[page], kv, kvh, slot, false)));
          }
          dots[e] = dot;
          if (++slot == block_size) {
            slot = 0;
            ++page;
          }
        }
        for (int32_t e = m; e < 16; ++e) dots[e] = _mm512_setzero_ps();
        const __m512 sv = _mm512_mul_ps(Sum16(dots), scale_v);
        const auto mask = static_cast<__mmask16>(m == 16 ? 0xffff : (1u << m) - 1);
        _mm512_mask_storeu_ps(scores + i, mask, sv);
        max_v = _mm512_mask_max_ps(max_v, mask, max_v, sv);
      }
      const float block_max = _mm512_reduce_max_ps(max_v);
      RowState& st = state[r];
      const float new_max = std::max(st.max, block_max);
      const float correction = std::exp(st.max - new_max);  // 0 for the first block
      st.sum = st.sum * correction + SoftmaxNumerators(scores, n, new_max);
      st.max = new_max;
      float* a = acc + r * kDim;
      __m512 ar[NV];
      const __m512 c = _mm512_set1_ps(correction);
      for (int v = 0; v < NV; ++v) ar[v] = _mm512_mul_ps(_mm512_loadu_ps(a + 16 * v), c);
      for (int32_t i = 0, t = kb; i < n;) {
        const int32_t in_page = std::min(n - i, block_size - t % block_size);
        const float* page = pages[t / block_size];
        const uint8_t* vr = reinterpret_cast<const uint8_t*>(page) + page_v_offset + head_offset +
                            (t % block_size) * kRowBytes;
        for (int32_t e = 0; e < in_page; ++e, vr += kRowBytes) {
          float weight = scores[i + e];
          if constexpr (DT == KvDtype::kQ8_0) {
            weight *= KvScale(page, kv, kvh, (t % block_size) + e, true);
          }
          const __m512 w = _mm512_set1_ps(weight);
          for (int v = 0; v < NV; ++v) ar[v] = _mm512_fmadd_ps(w, LoadRow16<DT>(vr, v), ar[v]);
        }
        i += in_page;
        t += in_page;
      }
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(a + 16 * v, ar[v]);
    }
  }
  for (int32_t r = 0; r < rows; ++r) {
    const __m512 inv = _mm512_set1_ps(1.0f / state[r].sum);
    for (int v = 0; v < NV; ++v) {
      _mm512_storeu_ps(out[r] + 16 * v,
                       _mm512_mul_ps(_mm512_loadu_ps(acc + r * kDim + 16 * v), inv));
    }
  }
}
#endif

using TileFn = void (*)(int32_t, const float* const*, float* const*, const int32_t*,
                        const float* const*, int32_t, const KvPageLayout&, float, float*, float*,
                        RowState*, const uint8_t* const*, const int32_t*);

#if defined(__AVX512F__)
template <int NV>
TileFn FastTileFor(KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kF32:
      return AttendTileAvx512<NV, KvDtype::kF32>;
    case KvDtype::kF16:
      return AttendTileAvx512<NV, KvDtype::kF16>;
    case KvDtype::kBf16:
      return AttendTileAvx512<NV, KvDtype::kBf16>;
    case KvDtype::kQ8_0:
      return AttendTileAvx512<NV, KvDtype::kQ8_0>;
  }
  return nullptr;
}
#endif

TileFn FastTile(int32_t head_dim, KvDtype dtype) {
#if defined(__AVX512F__)
  switch (head_dim) {
    case 32:
      return FastTileFor<2>(dtype);
    case 64:
      return FastTileFor<4>(dtype);
    case 96:
      return FastTileFor<6>(dtype);
    case 128:
      return FastTileFor<8>(dtype);
    default:
      break;
  }
#else
  (void)head_dim;
  (void)dtype;
#endif
  return nullptr;
}

// Query rows of one sequence per tile: enough to reuse each K/V block many
// times, few enough that the tile's accumulators stay in L1/L2.
constexpr int32_t kTileRows = 16;

}  // namespace

void PagedAttention(ThreadPool& pool, const float* q, absl::Span<const AttentionSeq> seqs,
                    int32_t heads, const KvPageLayout& kv, float scale, float* out) {
  const int32_t kv_heads = kv.kv_heads, head_dim = kv.head_dim;
  RESTKV_CHECK(heads % kv_heads == 0) << heads << " / " << kv_heads;
  const int32_t group = heads / kv_heads;
  // A task is (sequence, tile of up to kTileRows query rows, KV head) and
  // covers the `group` query heads of that KV head. Its cost grows with its
  // visible keys (causal rows differ, decode sequences differ), so tasks are
  // split between threads by cost, not by count.
  constexpr int64_t kRowOverhead = 16;  // per-row cost in key equivalents
  struct Task {
    int32_t seq, row_begin, row_end, kv_head;
  };
  std::vector<Task> tasks;
  std::vector<int64_t> cost_begin{0};
  int32_t max_rows = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const AttentionSeq& seq = seqs[s];
    RESTKV_CHECK(seq.num_q <= seq.kv_len) << seq.num_q << " > " << seq.kv_len;
    for (int32_t j0 = 0; j0 < seq.num_q; j0 += kTileRows) {
      const int32_t j1 = std::min(seq.num_q, j0 + kTileRows);
      max_rows = std::max(max_rows, j1 - j0);
      int64_t cost = 0;
      for (int32_t j = j0; j < j1; ++j) cost += seq.kv_len - seq.num_q + j + 1 + kRowOverhead;
      for (int32_t g = 0; g < kv_heads; ++g) {
        tasks.push_back({static_cast<int32_t>(s), j0, j1, g});
        cost_begin.push_back(cost_begin.back() + cost * group);
      }
    }
  }
  // Sparse prefill patterns, per sequence that asks for one: [heads][blocks].
  std::vector<std::vector<uint8_t>> patterns(seqs.size());
  for (size_t s = 0; s < seqs.size(); ++s) {
    const AttentionSeq& seq = seqs[s];
    // Only calls with a sparse row (one before sparse_dense_from).
    if (seq.sparse != nullptr && seq.hole_begin == nullptr && seq.num_q > 0 &&
        seq.kv_len - seq.num_q < seq.sparse_dense_from) {
      patterns[s] = EstimateSparsePattern(pool, q, seq, heads, kv, scale, *seq.sparse);
    }
  }
  const int64_t total_cost = cost_begin.back();
  // First task whose cost range starts at or after `cost` (monotone in cost).
  auto task_at_cost = [&](int64_t cost) -> int64_t {
    return std::lower_bound(cost_begin.begin(), cost_begin.end() - 1, cost) - cost_begin.begin();
  };
  const TileFn fast = FastTile(head_dim, kv.dtype);
  const int parts = pool.num_threads();
  pool.ParallelFor(parts, [&](int64_t p0, int64_t p1, int) {
    const int32_t max_tile = max_rows * group;
    std::vector<float> scores(fast != nullptr ? kKeyBlock : 0);
    std::vector<float> full_scores;
    std::vector<float> row(fast != nullptr ? 0 : head_dim);
    std::vector<float> acc(fast != nullptr ? static_cast<size_t>(max_tile) * head_dim : 0);
    std::vector<RowState> state(max_tile);
    std::vector<const float*> qrows(max_tile);
    std::vector<float*> orows(max_tile);
    std::vector<int32_t> visible(max_tile);
    std::vector<const uint8_t*> keep(max_tile);
    std::vector<int32_t> local_from(max_tile);
    const int64_t t_end =
        p1 == parts ? static_cast<int64_t>(tasks.size()) : task_at_cost(total_cost * p1 / parts);
    for (int64_t ti = p0 == 0 ? 0 : task_at_cost(total_cost * p0 / parts); ti < t_end; ++ti) {
      const Task& task = tasks[ti];
      const AttentionSeq& seq = seqs[task.seq];
      const std::vector<uint8_t>& pattern = patterns[task.seq];
      const int32_t num_blocks = (seq.kv_len + kKeyBlock - 1) / kKeyBlock;
      bool sparse = false;
      int32_t rows = 0;
      for (int32_t j = task.row_begin; j < task.row_end; ++j) {
        for (int32_t h = task.kv_head * group; h < (task.kv_head + 1) * group; ++h) {
          const int64_t at = (static_cast<int64_t>(seq.q_begin + j) * heads + h) * head_dim;
          qrows[rows] = q + at;
          orows[rows] = out + at;
          // Query row j of the sequence sees kv_len - num_q + j + 1 keys.
          visible[rows] = seq.kv_len - seq.num_q + j + 1;
          keep[rows] = nullptr;
          const int32_t position = seq.kv_len - seq.num_q + j;
          if (!pattern.empty() && position < seq.sparse_dense_from) {
            keep[rows] = pattern.data() + static_cast<int64_t>(h) * num_blocks;
            local_from[rows] = position / kKeyBlock - seq.sparse->local_blocks + 1;
            sparse = true;
          }
          ++rows;
        }
      }
      // A KV head with padding (per-head lengths) takes the generic path,
      // which jumps over the padding slots.
      const bool holes = seq.hole_begin != nullptr && seq.hole_begin[task.kv_head] < seq.hole_end;
      if (fast != nullptr && !holes) {
        fast(rows, qrows.data(), orows.data(), visible.data(), seq.pages, task.kv_head, kv, scale,
             scores.data(), acc.data(), state.data(), sparse ? keep.data() : nullptr,
             local_from.data());
        continue;
      }
      full_scores.resize(seq.kv_len);
      row.resize(head_dim);
      for (int32_t r = 0; r < rows; ++r) {
        AttendGeneric(qrows[r], seq.pages, task.kv_head, visible[r], kv, scale, full_scores.data(),
                      row.data(), orows[r], holes ? seq.hole_begin[task.kv_head] : 0,
                      holes ? seq.hole_end : 0, keep[r], keep[r] ? local_from[r] : 0);
      }
    }
  });
}

void ContiguousAttentionReference(const float* q, const float* k, const float* v, int32_t num_q,
                                  int32_t kv_len, int32_t heads, int32_t kv_heads, int32_t head_dim,
                                  float scale, float* out) {
  const int32_t group = heads / kv_heads;
  std::vector<double> p(kv_len);
  for (int32_t j = 0; j < num_q; ++j) {
    const int32_t visible = kv_len - num_q + j + 1;
    for (int32_t h = 0; h < heads; ++h) {
      const int32_t g = h / group;
      const float* qv = q + (static_cast<int64_t>(j) * heads + h) * head_dim;
      double mx = -1e300;
      for (int32_t t = 0; t < visible; ++t) {
        double dot = 0;
        for (int32_t i = 0; i < head_dim; ++i) {
          dot += static_cast<double>(qv[i]) *
                 k[(static_cast<int64_t>(t) * kv_heads + g) * head_dim + i];
        }
        p[t] = dot * scale;
        mx = std::max(mx, p[t]);
      }
      double sum = 0;
      for (int32_t t = 0; t < visible; ++t) sum += (p[t] = std::exp(p[t] - mx));
      for (int32_t i = 0; i < head_dim; ++i) {
        double acc = 0;
        for (int32_t t = 0; t < visible; ++t) {
          acc += p[t] * v[(static_cast<int64_t>(t) * kv_heads + g) * head_dim + i];
        }
        out[(static_cast<int64_t>(j) * heads + h) * head_dim + i] = static_cast<float>(acc / sum);
      }
    }
  }
}

}  // namespace restkv::kernels::cpu
