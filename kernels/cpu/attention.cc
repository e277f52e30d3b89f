#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/check.h"
#include "kernels/cpu/vec_math.h"

#if defined(__AVX512F__)
// GCC 12's AVX-512 headers build some intrinsics from _mm512_undefined_*(),
// which its flow analysis reports as (maybe-)uninitialised (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace restkv::kernels::cpu {

namespace {

// Attention of one query row and head over keys [0, visible) of KV head
// `kvh`: exact softmax in fp32, scores kept in `scores`.
void AttendGeneric(const float* qv, const float* const* pages, int32_t kvh, int32_t visible,
                   int32_t head_dim, int32_t block_size, int64_t page_v_offset, float scale,
                   float* scores, float* o) {
  float max_score = -std::numeric_limits<float>::infinity();
  for (int32_t t = 0; t < visible; ++t) {
    const float* kt =
        pages[t / block_size] + (static_cast<int64_t>(kvh) * block_size + t % block_size) * head_dim;
    scores[t] = DotF32(qv, kt, head_dim) * scale;
    max_score = std::max(max_score, scores[t]);
  }
  float sum = 0.0f;
  for (int32_t t = 0; t < visible; ++t) {
    scores[t] = std::exp(scores[t] - max_score);
    sum += scores[t];
  }
  std::fill(o, o + head_dim, 0.0f);
  const float inv = 1.0f / sum;
  for (int32_t t = 0; t < visible; ++t) {
    const float* vt = pages[t / block_size] + page_v_offset +
                      (static_cast<int64_t>(kvh) * block_size + t % block_size) * head_dim;
    AxpyF32(scores[t] * inv, vt, o, head_dim);
  }
}

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

// The same for head_dim = 16·NV with the query and the output row held in
// registers: one reduction per score, and V rows accumulate without the
// load/store of the output that an axpy per key costs.
template <int NV>
void AttendAvx512(const float* qv, const float* const* pages, int32_t kvh, int32_t visible,
                  int32_t block_size, int64_t page_v_offset, float scale, float* scores,
                  float* o) {
  constexpr int64_t kDim = 16 * NV;
  __m512 qr[NV];
  for (int v = 0; v < NV; ++v) qr[v] = _mm512_loadu_ps(qv + 16 * v);
  const int64_t head_offset = static_cast<int64_t>(kvh) * block_size * kDim;
  float max_score = -std::numeric_limits<float>::infinity();
  for (int32_t t0 = 0, p = 0; t0 < visible; t0 += block_size, ++p) {
    const float* k = pages[p] + head_offset;
    const int32_t n = std::min(block_size, visible - t0);
    for (int32_t i = 0; i < n; ++i, k += kDim) {
      __m512 acc = _mm512_mul_ps(qr[0], _mm512_loadu_ps(k));
      for (int v = 1; v < NV; ++v) acc = _mm512_fmadd_ps(qr[v], _mm512_loadu_ps(k + 16 * v), acc);
      const float s = _mm512_reduce_add_ps(acc) * scale;
      scores[t0 + i] = s;
      max_score = std::max(max_score, s);
    }
  }
  const float sum = SoftmaxNumerators(scores, visible, max_score);
  __m512 acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = _mm512_setzero_ps();
  for (int32_t t0 = 0, p = 0; t0 < visible; t0 += block_size, ++p) {
    const float* vr = pages[p] + page_v_offset + head_offset;
    const int32_t n = std::min(block_size, visible - t0);
    for (int32_t i = 0; i < n; ++i, vr += kDim) {
      const __m512 w = _mm512_set1_ps(scores[t0 + i]);
      for (int v = 0; v < NV; ++v) acc[v] = _mm512_fmadd_ps(w, _mm512_loadu_ps(vr + 16 * v), acc[v]);
    }
  }
  const __m512 inv = _mm512_set1_ps(1.0f / sum);
  for (int v = 0; v < NV; ++v) _mm512_storeu_ps(o + 16 * v, _mm512_mul_ps(acc[v], inv));
}
#endif

using AttendFn = void (*)(const float*, const float* const*, int32_t, int32_t, int32_t, int64_t,
                          float, float*, float*);

AttendFn FastAttend(int32_t head_dim) {
#if defined(__AVX512F__)
  switch (head_dim) {
    case 32:
      return AttendAvx512<2>;
    case 64:
      return AttendAvx512<4>;
    case 96:
      return AttendAvx512<6>;
    case 128:
      return AttendAvx512<8>;
    default:
      break;
  }
#endif
  return nullptr;
}

}  // namespace

void PagedAttention(ThreadPool& pool, const float* q, absl::Span<const AttentionSeq> seqs,
                    int32_t heads, int32_t kv_heads, int32_t head_dim, int32_t block_size,
                    float scale, float* out) {
  RESTKV_CHECK(heads % kv_heads == 0) << heads << " / " << kv_heads;
  const int32_t group = heads / kv_heads;
  // Task t = (query row t / heads, head t % heads); query rows are numbered
  // across sequences. A task's cost grows with its visible keys (causal rows
  // differ, decode sequences differ), so the tasks are split between threads
  // by cost, not by count: equal counts left one thread idle half the time.
  constexpr int64_t kTaskOverhead = 16;  // per-task cost in key equivalents
  std::vector<int32_t> row_seq, row_visible;
  std::vector<int64_t> row_cost_begin{0};
  int32_t max_kv = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    RESTKV_CHECK(seqs[s].num_q <= seqs[s].kv_len) << seqs[s].num_q << " > " << seqs[s].kv_len;
    max_kv = std::max(max_kv, seqs[s].kv_len);
    for (int32_t j = 0; j < seqs[s].num_q; ++j) {
      const int32_t visible = seqs[s].kv_len - seqs[s].num_q + j + 1;
      row_seq.push_back(static_cast<int32_t>(s));
      row_visible.push_back(visible);
      row_cost_begin.push_back(row_cost_begin.back() + (visible + kTaskOverhead) * heads);
    }
  }
  const int64_t num_rows = static_cast<int64_t>(row_seq.size());
  const int64_t num_tasks = num_rows * heads, total_cost = row_cost_begin.back();
  // First task whose cost range starts at or after `cost` (monotone in cost).
  auto task_at_cost = [&](int64_t cost) -> int64_t {
    if (cost >= total_cost) return num_tasks;
    const int64_t r =
        std::upper_bound(row_cost_begin.begin(), row_cost_begin.end(), cost) - row_cost_begin.begin() - 1;
    const int64_t per_head = row_visible[r] + kTaskOverhead;
    const int64_t h = std::min<int64_t>(heads, (cost - row_cost_begin[r] + per_head - 1) / per_head);
    return r * heads + h;
  };
  const int64_t page_v_offset = static_cast<int64_t>(kv_heads) * block_size * head_dim;
  const AttendFn fast = FastAttend(head_dim);
  const int parts = pool.num_threads();
  pool.ParallelFor(parts, [&](int64_t p0, int64_t p1, int) {
    std::vector<float> scores(max_kv);
    const int64_t t_end = task_at_cost(total_cost * p1 / parts);
    for (int64_t task = task_at_cost(total_cost * p0 / parts); task < t_end; ++task) {
      const int64_t r = task / heads;
      const int32_t h = static_cast<int32_t>(task % heads);
      const AttentionSeq& seq = seqs[row_seq[r]];
      // Query row j of the sequence sees kv_len - num_q + j + 1 keys.
      const int64_t qrow = seq.q_begin + row_visible[r] - (seq.kv_len - seq.num_q + 1);
      const float* qv = q + (qrow * heads + h) * head_dim;
      float* o = out + (qrow * heads + h) * head_dim;
      if (fast != nullptr) {
        fast(qv, seq.pages, h / group, row_visible[r], block_size, page_v_offset, scale,
             scores.data(), o);
      } else {
        AttendGeneric(qv, seq.pages, h / group, row_visible[r], head_dim, block_size,
                      page_v_offset, scale, scores.data(), o);
      }
    }
  });
}

void ContiguousAttentionReference(const float* q, const float* k, const float* v, int32_t num_q,
                                  int32_t kv_len, int32_t heads, int32_t kv_heads,
                                  int32_t head_dim, float scale, float* out) {
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
          dot += static_cast<double>(qv[i]) * k[(static_cast<int64_t>(t) * kv_heads + g) * head_dim + i];
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
