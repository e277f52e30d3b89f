#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/check.h"
#include "kernels/cpu/vec_math.h"

namespace restkv::kernels::cpu {

void PagedAttention(ThreadPool& pool, const float* q, absl::Span<const AttentionSeq> seqs,
                    int32_t heads, int32_t kv_heads, int32_t head_dim, int32_t block_size,
                    float scale, float* out) {
  RESTKV_CHECK(heads % kv_heads == 0) << heads << " / " << kv_heads;
  const int32_t group = heads / kv_heads;
  // Task index -> (sequence, query row, head): prefix sums over sequences.
  std::vector<int64_t> first_task(seqs.size() + 1, 0);
  int32_t max_kv = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    RESTKV_CHECK(seqs[s].num_q <= seqs[s].kv_len) << seqs[s].num_q << " > " << seqs[s].kv_len;
    first_task[s + 1] = first_task[s] + static_cast<int64_t>(seqs[s].num_q) * heads;
    max_kv = std::max(max_kv, seqs[s].kv_len);
  }
  const int64_t page_v_offset = static_cast<int64_t>(kv_heads) * block_size * head_dim;
  pool.ParallelFor(first_task.back(), [&](int64_t t0, int64_t t1, int) {
    std::vector<float> scores(max_kv);
    size_t s = std::upper_bound(first_task.begin(), first_task.end(), t0) - first_task.begin() - 1;
    for (int64_t task = t0; task < t1; ++task) {
      while (task >= first_task[s + 1]) ++s;
      const AttentionSeq& seq = seqs[s];
      const int64_t local = task - first_task[s];
      const int32_t j = static_cast<int32_t>(local / heads), h = static_cast<int32_t>(local % heads);
      const int32_t kvh = h / group;
      const int32_t visible = seq.kv_len - seq.num_q + j + 1;
      const float* qv = q + (static_cast<int64_t>(seq.q_begin + j) * heads + h) * head_dim;
      float* o = out + (static_cast<int64_t>(seq.q_begin + j) * heads + h) * head_dim;
      float max_score = -std::numeric_limits<float>::infinity();
      for (int32_t t = 0; t < visible; ++t) {
        const float* page = seq.pages[t / block_size];
        const float* kt = page + (static_cast<int64_t>(kvh) * block_size + t % block_size) * head_dim;
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
        const float* page = seq.pages[t / block_size];
        const float* vt = page + page_v_offset +
                          (static_cast<int64_t>(kvh) * block_size + t % block_size) * head_dim;
        AxpyF32(scores[t] * inv, vt, o, head_dim);
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
