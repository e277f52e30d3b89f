// Paged attention with per-head lengths (AttentionSeq::hole_begin): each KV
// head attends only to its own valid slots, and the result equals dense
// attention over those slots alone.
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::kernels::cpu {
namespace {

std::vector<float> Random(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

struct Shape {
  int32_t heads, kv_heads, head_dim, block_size;
};

class HeadLengthsTest : public ::testing::TestWithParam<std::tuple<Shape, KvDtype>> {};

TEST_P(HeadLengthsTest, EqualsDenseAttentionOverEachHeadsValidSlots) {
  const auto [c, dtype] = GetParam();
  const KvPageLayout layout{c.kv_heads, c.head_dim, c.block_size, dtype};
  CpuBackend backend(2);
  std::mt19937 rng(7);
  // The layer's pages hold `padded` slots after eviction, then `decoded`
  // tokens shared by every head; num_q of those are this call's queries.
  constexpr int32_t padded = 150, decoded = 9, num_q = 4;
  const int32_t kv_len = padded + decoded;
  const int32_t group = c.heads / c.kv_heads;
  const int64_t qrow = static_cast<int64_t>(c.heads) * c.head_dim;
  const int64_t kvrow = static_cast<int64_t>(c.kv_heads) * c.head_dim;
  // Head lengths: all padding, the longest head (no padding) and others.
  std::vector<int32_t> hole_begin(c.kv_heads);
  for (int32_t g = 0; g < c.kv_heads; ++g) {
    hole_begin[g] = g == 0 ? padded : g == 1 ? 0 : 17 * g % padded;
  }
  std::vector<float> k = Random(kv_len * kvrow, rng), v = Random(kv_len * kvrow, rng);
  // Padding slots hold keys that would dominate every softmax and values
  // far from the others, so attending to any of them shows.
  for (int32_t t = 0; t < padded; ++t) {
    for (int32_t g = 0; g < c.kv_heads; ++g) {
      if (t < hole_begin[g]) continue;
      for (int32_t i = 0; i < c.head_dim; ++i) {
        k[(t * c.kv_heads + g) * c.head_dim + i] = 30.0f;
        v[(t * c.kv_heads + g) * c.head_dim + i] = 1000.0f;
      }
    }
  }
  const int64_t page_floats = layout.page_bytes() / 4;
  const int32_t num_pages = (kv_len + c.block_size - 1) / c.block_size;
  std::vector<std::vector<float>> store(num_pages, std::vector<float>(page_floats, 0.0f));
  std::vector<float*> table;
  for (int32_t p = num_pages - 1; p >= 0; --p) table.push_back(store[p].data());
  std::vector<KvSlot> slots(kv_len);
  for (int32_t t = 0; t < kv_len; ++t) slots[t] = {table[t / c.block_size], t % c.block_size};
  backend.StoreKv(k.data(), v.data(), slots.data(), kv_len, layout);
  const std::vector<float> q = Random(num_q * qrow, rng);
  AttentionSeq seq{0, num_q, kv_len, table.data()};
  seq.hole_begin = hole_begin.data();
  seq.hole_end = padded;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  std::vector<float> out(num_q * qrow, NAN);
  backend.Attention(q.data(), {&seq, 1}, c.heads, layout, scale, out.data());

  // Dense reference per KV head: its valid slots gathered (as stored), the
  // group's query heads alone.
  std::vector<float> stored_k(c.head_dim), stored_v(c.head_dim);
  for (int32_t g = 0; g < c.kv_heads; ++g) {
    std::vector<float> dk, dv;
    for (int32_t t = 0; t < kv_len; ++t) {
      if (t >= hole_begin[g] && t < padded) continue;
      const float* page = table[t / c.block_size];
      const int32_t slot = t % c.block_size;
      const auto* base = reinterpret_cast<const uint8_t*>(page);
      const int64_t row = layout.RowIndex(g, slot);
      const float* scales_k = layout.has_scales()
                                  ? reinterpret_cast<const float*>(base + layout.k_scale_offset())
                                  : nullptr;
      const float* scales_v = layout.has_scales()
                                  ? reinterpret_cast<const float*>(base + layout.v_scale_offset())
                                  : nullptr;
      DecodeKvRow(dtype, base + row * layout.row_bytes(), scales_k ? scales_k[row] : 1.0f,
                  c.head_dim, stored_k.data());
      DecodeKvRow(dtype, base + layout.v_offset() + row * layout.row_bytes(),
                  scales_v ? scales_v[row] : 1.0f, c.head_dim, stored_v.data());
      dk.insert(dk.end(), stored_k.begin(), stored_k.end());
      dv.insert(dv.end(), stored_v.begin(), stored_v.end());
    }
    const int32_t dense_len = static_cast<int32_t>(dk.size() / c.head_dim);
    ASSERT_EQ(dense_len, hole_begin[g] + decoded);
    std::vector<float> gq(num_q * group * c.head_dim), ref(gq.size());
    for (int32_t j = 0; j < num_q; ++j) {
      for (int32_t h = 0; h < group; ++h) {
        std::copy_n(q.data() + j * qrow + (g * group + h) * c.head_dim, c.head_dim,
                    gq.data() + (j * group + h) * c.head_dim);
      }
    }
    ContiguousAttentionReference(gq.data(), dk.data(), dv.data(), num_q, dense_len, group, 1,
                                 c.head_dim, scale, ref.data());
    for (int32_t j = 0; j < num_q; ++j) {
      for (int32_t h = 0; h < group; ++h) {
        for (int32_t i = 0; i < c.head_dim; ++i) {
          const float want = ref[(j * group + h) * c.head_dim + i];
          const float got = out[j * qrow + (g * group + h) * c.head_dim + i];
          ASSERT_NEAR(got, want, 1e-5f + 1e-4f * std::fabs(want))
              << "kv head " << g << " row " << j << " head " << h << " dim " << i;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, HeadLengthsTest,
                         ::testing::Combine(::testing::Values(Shape{9, 3, 64, 16},
                                                              Shape{8, 4, 32, 8},
                                                              Shape{6, 3, 16, 3}),
                                            ::testing::Values(KvDtype::kF32, KvDtype::kF16,
                                                              KvDtype::kBf16, KvDtype::kQ8_0)));

}  // namespace
}  // namespace restkv::kernels::cpu
