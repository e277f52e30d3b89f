#include "kernels/cpu/attention.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::kernels::cpu {
namespace {

struct Case {
  int32_t heads, kv_heads, head_dim, block_size;
};

std::vector<float> Random(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Paged attention over scattered pages equals contiguous attention, for
// several sequences in one call with different lengths and query counts.
class PagedAttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(PagedAttentionTest, MatchesContiguousReference) {
  const Case c = GetParam();
  CpuBackend backend(2);
  std::mt19937 rng(42);
  // (kv_len, num_q): prefill, chunked prefill, decode; lengths not multiples of
  // the block; several key blocks of the online softmax.
  const std::vector<std::pair<int32_t, int32_t>> shapes = {
      {1, 1}, {37, 37}, {129, 5}, {57, 1}, {16, 16}, {700, 19}, {1030, 1}};
  const int64_t page_floats = 2LL * c.kv_heads * c.block_size * c.head_dim;
  const int64_t qrow = static_cast<int64_t>(c.heads) * c.head_dim;
  const int64_t kvrow = static_cast<int64_t>(c.kv_heads) * c.head_dim;

  int32_t total_q = 0;
  for (auto [kv, nq] : shapes) total_q += nq;
  std::vector<float> q = Random(total_q * qrow, rng);
  std::vector<std::vector<float>> k(shapes.size()), v(shapes.size());
  std::vector<std::vector<float>> page_store;
  std::vector<std::vector<float*>> tables(shapes.size());
  std::vector<AttentionSeq> seqs;
  int32_t q_begin = 0;
  for (size_t s = 0; s < shapes.size(); ++s) {
    const auto [kv_len, nq] = shapes[s];
    k[s] = Random(kv_len * kvrow, rng);
    v[s] = Random(kv_len * kvrow, rng);
    const int32_t pages = (kv_len + c.block_size - 1) / c.block_size;
    for (int32_t p = 0; p < pages; ++p) page_store.emplace_back(page_floats, NAN);
    // Pages in reverse order of creation, so adjacency is never assumed.
    for (int32_t p = 0; p < pages; ++p) {
      tables[s].push_back(page_store[page_store.size() - 1 - p].data());
    }
    std::vector<KvSlot> slots(kv_len);
    for (int32_t t = 0; t < kv_len; ++t) slots[t] = {tables[s][t / c.block_size], t % c.block_size};
    backend.StoreKv(k[s].data(), v[s].data(), slots.data(), kv_len, c.kv_heads, c.head_dim,
                    c.block_size);
    seqs.push_back({q_begin, nq, kv_len, tables[s].data()});
    q_begin += nq;
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  std::vector<float> out(total_q * qrow, NAN);
  backend.Attention(q.data(), seqs, c.heads, c.kv_heads, c.head_dim, c.block_size, scale,
                    out.data());
  for (size_t s = 0; s < shapes.size(); ++s) {
    const auto [kv_len, nq] = shapes[s];
    std::vector<float> ref(nq * qrow);
    ContiguousAttentionReference(q.data() + seqs[s].q_begin * qrow, k[s].data(), v[s].data(), nq,
                                 kv_len, c.heads, c.kv_heads, c.head_dim, scale, ref.data());
    for (int64_t i = 0; i < nq * qrow; ++i) {
      const float got = out[seqs[s].q_begin * qrow + i];
      ASSERT_FALSE(std::isnan(got)) << "seq " << s << " element " << i;
      ASSERT_NEAR(got, ref[i], 1e-5f + 1e-4f * std::fabs(ref[i])) << "seq " << s << " element " << i;
    }
  }
}

// A query row's result is bit-identical whether it is computed alone (decode)
// or among a prefill chunk's rows (recompute after preemption relies on it).
TEST(PagedAttention, RowAloneEqualsRowInChunk) {
  const int32_t heads = 6, kv_heads = 2, d = 64, bs = 16, kv_len = 600;
  CpuBackend backend(2);
  std::mt19937 rng(3);
  const int64_t page_floats = 2LL * kv_heads * bs * d;
  std::vector<std::vector<float>> store((kv_len + bs - 1) / bs, std::vector<float>(page_floats));
  std::vector<float*> table;
  for (auto& p : store) table.push_back(p.data());
  const std::vector<float> k = Random(int64_t{kv_len} * kv_heads * d, rng);
  const std::vector<float> v = Random(int64_t{kv_len} * kv_heads * d, rng);
  std::vector<KvSlot> slots(kv_len);
  for (int32_t t = 0; t < kv_len; ++t) slots[t] = {table[t / bs], t % bs};
  backend.StoreKv(k.data(), v.data(), slots.data(), kv_len, kv_heads, d, bs);
  const int32_t nq = 300;
  const std::vector<float> q = Random(int64_t{nq} * heads * d, rng);
  std::vector<float> chunk(q.size());
  const AttentionSeq all{0, nq, kv_len, table.data()};
  backend.Attention(q.data(), {&all, 1}, heads, kv_heads, d, bs, 0.125f, chunk.data());
  for (int32_t j : {0, 17, 255, 256, 299}) {
    std::vector<float> one(int64_t{heads} * d);
    const AttentionSeq seq{0, 1, kv_len - nq + j + 1, table.data()};
    backend.Attention(q.data() + int64_t{j} * heads * d, {&seq, 1}, heads, kv_heads, d, bs, 0.125f,
                      one.data());
    for (int64_t i = 0; i < heads * d; ++i) {
      ASSERT_EQ(one[i], chunk[int64_t{j} * heads * d + i]) << "row " << j << " element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, PagedAttentionTest,
                         ::testing::Values(Case{4, 4, 64, 16}, Case{9, 3, 64, 16},
                                           Case{8, 1, 32, 8}, Case{16, 2, 128, 1},
                                           Case{6, 2, 16, 3}));

}  // namespace
}  // namespace restkv::kernels::cpu
