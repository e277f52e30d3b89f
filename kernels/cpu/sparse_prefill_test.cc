#include "kernels/cpu/sparse_prefill.h"

#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::kernels::cpu {
namespace {

struct Shape {
  int32_t heads, kv_heads, head_dim;
};

// One prefill sequence of n tokens in scattered pages, K/V random except
// where the caller plants something.
struct Prefill {
  Prefill(const Shape& s, int32_t n, KvDtype dtype, uint32_t seed)
      : layout{s.kv_heads, s.head_dim, 16, dtype}, n(n), heads(s.heads), backend(2) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    auto random = [&](int64_t count) {
      std::vector<float> v(count);
      for (float& x : v) x = dist(rng);
      return v;
    };
    const int64_t kvrow = static_cast<int64_t>(s.kv_heads) * s.head_dim;
    k = random(n * kvrow);
    v = random(n * kvrow);
    q = random(static_cast<int64_t>(n) * s.heads * s.head_dim);
  }
  void Store() {
    const int32_t pages = (n + 15) / 16;
    store.assign(pages, std::vector<float>(layout.page_bytes() / 4, 0.0f));
    table.clear();
    for (int32_t p = pages - 1; p >= 0; --p) table.push_back(store[p].data());
    std::vector<KvSlot> slots(n);
    for (int32_t t = 0; t < n; ++t) slots[t] = {table[t / 16], t % 16};
    backend.StoreKv(k.data(), v.data(), slots.data(), n, layout);
  }
  // The whole prompt in one call, or in row chunks of `chunk` (as the model
  // runs long prompts), the last dense_rows rows dense.
  std::vector<float> Run(const SparsePrefill* sparse, int32_t chunk = 0) {
    std::vector<float> out(q.size(), NAN);
    const int64_t qrow = static_cast<int64_t>(heads) * layout.head_dim;
    for (int32_t c0 = 0; c0<n; c0 += chunk> 0 ? chunk : n) {
      const int32_t rows = std::min(n - c0, chunk > 0 ? chunk : n);
      AttentionSeq seq{0, rows, c0 + rows, table.data()};
      seq.sparse = sparse;
      seq.sparse_dense_from = sparse ? n - sparse->dense_rows : 0;
      backend.Attention(q.data() + c0 * qrow, {&seq, 1}, heads, layout, Scale(),
                        out.data() + c0 * qrow);
    }
    return out;
  }
  float Scale() const { return 1.0f / std::sqrt(static_cast<float>(layout.head_dim)); }

  KvPageLayout layout;
  int32_t n, heads;
  CpuBackend backend;
  std::vector<float> q, k, v;
  std::vector<std::vector<float>> store;
  std::vector<float*> table;
};

class SparsePrefillTest : public ::testing::TestWithParam<std::tuple<Shape, KvDtype>> {};

// A pattern that keeps every block computes exactly what dense prefill
// computes, bit for bit.
TEST_P(SparsePrefillTest, DensePatternEqualsDensePrefillExactly) {
  const auto [shape, dtype] = GetParam();
  Prefill p(shape, 700, dtype, 3);
  p.Store();
  SparsePrefill all;
  all.top_blocks = 1000;
  all.dense_rows = 32;
  EXPECT_EQ(p.Run(&all), p.Run(nullptr));
  EXPECT_EQ(p.Run(&all, 256), p.Run(nullptr));
}

// A real pattern equals the dense reference restricted to that pattern.
TEST_P(SparsePrefillTest, SparseRowsFollowThePattern) {
  const auto [shape, dtype] = GetParam();
  if (dtype != KvDtype::kF32) GTEST_SKIP() << "the reference reads f32 K/V";
  const int32_t n = 700, d = shape.head_dim, group = shape.heads / shape.kv_heads;
  Prefill p(shape, n, dtype, 5);
  p.Store();
  SparsePrefill config;
  config.top_blocks = 2;
  config.local_blocks = 2;
  config.sink_blocks = 1;
  config.dense_rows = 64;
  const std::vector<float> got = p.Run(&config);
  AttentionSeq seq{0, n, n, p.table.data()};
  seq.sparse_dense_from = n - config.dense_rows;
  ThreadPool pool(2);
  const std::vector<uint8_t> keep =
      EstimateSparsePattern(pool, p.q.data(), seq, shape.heads, p.layout, p.Scale(), config);
  const int32_t blocks = (n + 63) / 64;
  ASSERT_EQ(keep.size(), static_cast<size_t>(shape.heads) * blocks);
  const std::vector<float> dense = p.Run(nullptr);
  int64_t differs = 0;
  std::vector<double> w(n);
  for (int32_t h = 0; h < shape.heads; ++h) {
    const int32_t g = h / group;
    const uint8_t* flags = keep.data() + h * blocks;
    int32_t kept = 0;
    for (int32_t b = 0; b < blocks; ++b) kept += flags[b];
    EXPECT_LE(kept, config.top_blocks + config.sink_blocks);
    EXPECT_EQ(flags[0], 1) << "the sink block";
    for (int32_t j = 0; j < n; j += 7) {
      const float* qv = p.q.data() + (static_cast<int64_t>(j) * shape.heads + h) * d;
      double mx = -1e300;
      for (int32_t t = 0; t <= j; ++t) {
        w[t] = -1e300;
        if (!SparseRowAttends(config, flags, j, n - config.dense_rows, t / 64)) continue;
        double dot = 0;
        for (int32_t i = 0; i < d; ++i) {
          dot += static_cast<double>(qv[i]) *
                 p.k[(static_cast<int64_t>(t) * shape.kv_heads + g) * d + i];
        }
        w[t] = dot * p.Scale();
        mx = std::max(mx, w[t]);
      }
      double sum = 0;
      for (int32_t t = 0; t <= j; ++t) sum += (w[t] = w[t] > -1e299 ? std::exp(w[t] - mx) : 0.0);
      for (int32_t i = 0; i < d; ++i) {
        double acc = 0;
        for (int32_t t = 0; t <= j; ++t) {
          acc += w[t] * p.v[(static_cast<int64_t>(t) * shape.kv_heads + g) * d + i];
        }
        const int64_t at = (static_cast<int64_t>(j) * shape.heads + h) * d + i;
        const double want = acc / sum;
        ASSERT_NEAR(got[at], want, 1e-5 + 1e-4 * std::fabs(want)) << "head " << h << " row " << j;
        if (j >= n - config.dense_rows) {
          EXPECT_EQ(got[at], dense[at]) << "the dense tail is dense prefill, exactly";
        } else if (std::fabs(got[at] - dense[at]) > 1e-4) {
          ++differs;
        }
      }
    }
  }
  EXPECT_GT(differs, 0) << "the pattern skipped nothing";
}

INSTANTIATE_TEST_SUITE_P(Shapes, SparsePrefillTest,
                         ::testing::Combine(::testing::Values(Shape{9, 3, 64}, Shape{4, 2, 16}),
                                            ::testing::Values(KvDtype::kF32, KvDtype::kF16,
                                                              KvDtype::kQ8_0)));

// The estimate finds a block the last queries attend to.
TEST(SparsePrefillPattern, FindsTheBlockTheLastQueriesAttendTo) {
  const Shape shape{2, 1, 16};
  Prefill p(shape, 640, KvDtype::kF32, 9);
  // Keys of block 4 aligned with every query of the last 64 rows.
  for (int32_t t = 256; t < 320; ++t) {
    for (int32_t i = 0; i < 16; ++i) p.k[t * 16 + i] = 2.0f;
  }
  for (int32_t j = 640 - 64; j < 640; ++j) {
    for (int32_t h = 0; h < 2; ++h) {
      for (int32_t i = 0; i < 16; ++i) p.q[(j * 2 + h) * 16 + i] = 1.0f;
    }
  }
  p.Store();
  SparsePrefill config;
  config.top_blocks = 1;
  AttentionSeq seq{0, 640, 640, p.table.data()};
  ThreadPool pool(1);
  const std::vector<uint8_t> keep =
      EstimateSparsePattern(pool, p.q.data(), seq, 2, p.layout, p.Scale(), config);
  const std::vector<uint8_t> want = {1, 0, 0, 0, 1, 0, 0, 0, 0, 0};
  EXPECT_EQ(std::vector<uint8_t>(keep.begin(), keep.begin() + 10), want);
  EXPECT_EQ(std::vector<uint8_t>(keep.begin() + 10, keep.end()), want);
}

}  // namespace
}  // namespace restkv::kernels::cpu
