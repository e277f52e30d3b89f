#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/check.h"

#if defined(__AVX512F__)
// GCC 12's AVX-512 headers build some intrinsics from _mm512_undefined_*(),
// which its flow analysis reports as (maybe-)uninitialised (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include "kernels/cpu/attention_tile.h"
#include "kernels/cpu/attention_vec.h"
#include "kernels/cpu/sparse_prefill.h"
#include "kernels/cpu/vec_math.h"

namespace restkv::kernels::cpu {

namespace {

// Byte address of row (kvh, slot) of K (or of V, with `v` true) in a page.
inline const uint8_t* KvRow(const float* page, const KvPageLayout& kv, int32_t kvh, int32_t slot,
                            bool v) {
  return reinterpret_cast<const uint8_t*>(page) + (v ? kv.v_offset() : 0) +
         kv.RowIndex(kvh, slot) * kv.row_bytes();
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

// Block boundaries of the online softmax sit at absolute key positions, so a
// query row's arithmetic is the same whether it is computed alone (decode) or
// in a tile of prefill rows (recompute after preemption reproduces decode).
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

using TileFn = void (*)(int32_t, const float* const*, float* const*, const int32_t*,
                        const float* const*, int32_t, const KvPageLayout&, float, float*, float*,
                        RowState*, const uint8_t* const*, const int32_t*);

#if defined(__AVX512F__)
using AttentionVec = Avx512AttentionVec;
#define RESTKV_HAVE_ATTENTION_TILE 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
using AttentionVec = Avx2AttentionVec;
#define RESTKV_HAVE_ATTENTION_TILE 1
#endif

#if RESTKV_HAVE_ATTENTION_TILE
template <int kDim>
TileFn TileFor(KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kF32:
      return AttendTile<AttentionVec, kDim, KvDtype::kF32>;
    case KvDtype::kF16:
      return AttendTile<AttentionVec, kDim, KvDtype::kF16>;
    case KvDtype::kBf16:
      return AttendTile<AttentionVec, kDim, KvDtype::kBf16>;
    case KvDtype::kQ8_0:
      return AttendTile<AttentionVec, kDim, KvDtype::kQ8_0>;
  }
  return nullptr;
}
#endif

// The tile for this head size and dtype; nullptr where the generic path runs.
TileFn FastTile(int32_t head_dim, KvDtype dtype) {
#if RESTKV_HAVE_ATTENTION_TILE
  switch (head_dim) {
    case 32:
      return TileFor<32>(dtype);
    case 64:
      return TileFor<64>(dtype);
    case 96:
      return TileFor<96>(dtype);
    case 128:
      return TileFor<128>(dtype);
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
