#include "kernels/cpu/sparse_prefill.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "common/check.h"
#include "kernels/cpu/vec_math.h"

namespace restkv::kernels::cpu {

std::vector<uint8_t> EstimateSparsePattern(ThreadPool& pool, const float* q,
                                           const AttentionSeq& seq, int32_t heads,
                                           const KvPageLayout& kv, float scale,
                                           const SparsePrefill& config) {
  const int32_t n = seq.kv_len, d = kv.head_dim, bs = kv.block_size;
  const int32_t group = heads / kv.kv_heads;
  const int32_t num_blocks = (n + SparsePrefill::kBlock - 1) / SparsePrefill::kBlock;
  const int32_t rows = std::clamp(config.estimate_rows, 1, std::max(seq.num_q, 1));
  const int32_t first_row = seq.num_q - rows;  // the call's last rows
  std::vector<uint8_t> keep(static_cast<size_t>(heads) * num_blocks, 0);
  pool.ParallelFor(heads, [&](int64_t h0, int64_t h1, int) {
    std::vector<float> k(static_cast<size_t>(n) * d), scores(n);
    std::vector<double> mass(num_blocks);
    std::vector<int32_t> order(num_blocks);
    int32_t decoded_for = -1;
    for (int64_t h = h0; h < h1; ++h) {
      const int32_t g = static_cast<int32_t>(h) / group;
      if (g != decoded_for) {  // the KV head's keys as f32, once per KV head
        for (int32_t t = 0; t < n; ++t) {
          const float* page = seq.pages[t / bs];
          const int32_t slot = t % bs;
          const auto* base = reinterpret_cast<const uint8_t*>(page);
          const int64_t row = kv.RowIndex(g, slot);
          const float s = kv.has_scales()
                              ? reinterpret_cast<const float*>(base + kv.k_scale_offset())[row]
                              : 1.0f;
          DecodeKvRow(kv.dtype, base + row * kv.row_bytes(), s, d, &k[static_cast<size_t>(t) * d]);
        }
        decoded_for = g;
      }
      std::fill(mass.begin(), mass.end(), 0.0);
      for (int32_t j = first_row; j < seq.num_q; ++j) {
        const float* qv = q + (static_cast<int64_t>(seq.q_begin + j) * heads + h) * d;
        const int32_t pos = n - seq.num_q + j;  // the row sees keys 0..pos
        float mx = -std::numeric_limits<float>::infinity();
        for (int32_t t = 0; t <= pos; ++t) {
          scores[t] = DotF32(qv, &k[static_cast<size_t>(t) * d], d) * scale;
          mx = std::max(mx, scores[t]);
        }
        double sum = 0;
        for (int32_t t = 0; t <= pos; ++t) sum += (scores[t] = std::exp(scores[t] - mx));
        for (int32_t t = 0; t <= pos; ++t) mass[t / SparsePrefill::kBlock] += scores[t] / sum;
      }
      std::iota(order.begin(), order.end(), 0);
      const int32_t top = std::clamp(config.top_blocks, 0, num_blocks);
      std::partial_sort(order.begin(), order.begin() + top, order.end(), [&](int32_t a, int32_t b) {
        return mass[a] != mass[b] ? mass[a] > mass[b] : a < b;
      });
      uint8_t* flags = keep.data() + h * num_blocks;
      for (int32_t i = 0; i < top; ++i) flags[order[i]] = 1;
      for (int32_t b = 0; b < std::min(config.sink_blocks, num_blocks); ++b) flags[b] = 1;
    }
  });
  return keep;
}

}  // namespace restkv::kernels::cpu
