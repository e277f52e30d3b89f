#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::kernels::cpu {
namespace {

struct Case {
  int32_t heads, kv_heads, head_dim, block_size;
};

constexpr KvDtype kAllDtypes[] = {KvDtype::kF32, KvDtype::kF16, KvDtype::kBf16, KvDtype::kQ8_0};

// k [n][Hkv][d] as the page dtype stores it: every row encoded and decoded.
std::vector<float> RoundedAsStored(const std::vector<float>& k, int32_t head_dim, KvDtype dtype) {
  std::vector<float> out(k.size());
  std::vector<uint8_t> row(static_cast<size_t>(head_dim) * 4);
  for (size_t at = 0; at < k.size(); at += head_dim) {
    float scale = 0.0f;
    EncodeKvRow(dtype, &k[at], head_dim, row.data(), &scale);
    DecodeKvRow(dtype, row.data(), scale, head_dim, &out[at]);
  }
  return out;
}

std::vector<float> Random(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Paged attention over scattered pages equals contiguous attention, for
// several sequences in one call with different lengths and query counts.
class PagedAttentionTest : public ::testing::TestWithParam<std::tuple<Case, KvDtype>> {};

// Paged attention over pages of every dtype equals the contiguous fp64
// reference run on the values the pages hold (each row rounded to the dtype),
// to fp32 accuracy; and it is within the format's rounding bound of the
// reference on the unrounded fp32 K/V.
TEST_P(PagedAttentionTest, MatchesContiguousReference) {
  const auto [c, dtype] = GetParam();
  const KvPageLayout layout{c.kv_heads, c.head_dim, c.block_size, dtype};
  CpuBackend backend(2);
  std::mt19937 rng(42);
  // (kv_len, num_q): prefill, chunked prefill, decode; lengths not multiples of
  // the block; several key blocks of the online softmax.
  const std::vector<std::pair<int32_t, int32_t>> shapes = {{1, 1},   {37, 37},  {129, 5}, {57, 1},
                                                           {16, 16}, {700, 19}, {1030, 1}};
  const int64_t page_floats = layout.page_bytes() / 4;
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
    backend.StoreKv(k[s].data(), v[s].data(), slots.data(), kv_len, layout);
    seqs.push_back({q_begin, nq, kv_len, tables[s].data()});
    q_begin += nq;
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  std::vector<float> out(total_q * qrow, NAN);
  backend.Attention(q.data(), seqs, c.heads, layout, scale, out.data());
  // Rounding bound against fp32 K/V, from the format's unit roundoff u:
  // every stored element is off by at most u·max|x| (u relative to the row
  // maximum for q8_0), so a score moves by at most
  //   ds = scale · u · max|k| · max_row sum|q|,
  // the softmax weights by a factor within e^(±2ds), and the output by at
  // most max|v| · (u + e^(2ds) - 1). Doubled for the fp32 arithmetic.
  const double u = KvUnitRoundoff(dtype);
  double q_l1 = 0;
  for (int64_t r = 0; r < static_cast<int64_t>(q.size()) / c.head_dim; ++r) {
    double sum = 0;
    for (int32_t i = 0; i < c.head_dim; ++i) sum += std::fabs(q[r * c.head_dim + i]);
    q_l1 = std::max(q_l1, sum);
  }
  for (size_t s = 0; s < shapes.size(); ++s) {
    const auto [kv_len, nq] = shapes[s];
    double k_max = 0, v_max = 0;
    for (float x : k[s]) k_max = std::max(k_max, static_cast<double>(std::fabs(x)));
    for (float x : v[s]) v_max = std::max(v_max, static_cast<double>(std::fabs(x)));
    const double ds = scale * u * k_max * q_l1;
    const double bound = 2 * v_max * (u + std::expm1(2 * ds)) + 1e-5;
    std::vector<float> ref(nq * qrow), ref_f32(nq * qrow);
    const std::vector<float> ks = RoundedAsStored(k[s], c.head_dim, dtype);
    const std::vector<float> vs = RoundedAsStored(v[s], c.head_dim, dtype);
    ContiguousAttentionReference(q.data() + seqs[s].q_begin * qrow, ks.data(), vs.data(), nq,
                                 kv_len, c.heads, c.kv_heads, c.head_dim, scale, ref.data());
    ContiguousAttentionReference(q.data() + seqs[s].q_begin * qrow, k[s].data(), v[s].data(), nq,
                                 kv_len, c.heads, c.kv_heads, c.head_dim, scale, ref_f32.data());
    for (int64_t i = 0; i < nq * qrow; ++i) {
      const float got = out[seqs[s].q_begin * qrow + i];
      ASSERT_FALSE(std::isnan(got)) << "seq " << s << " element " << i;
      ASSERT_NEAR(got, ref[i], 1e-5f + 1e-4f * std::fabs(ref[i]))
          << "seq " << s << " element " << i;
      ASSERT_NEAR(got, ref_f32[i], bound) << "vs fp32 K/V: seq " << s << " element " << i;
    }
  }
}

// A query row's result is bit-identical whether it is computed alone (decode)
// or among a prefill chunk's rows (recompute after preemption relies on it).
class PagedAttentionDtypeTest : public ::testing::TestWithParam<KvDtype> {};

TEST_P(PagedAttentionDtypeTest, RowAloneEqualsRowInChunk) {
  const int32_t heads = 6, kv_heads = 2, d = 64, bs = 16, kv_len = 600;
  const KvPageLayout layout{kv_heads, d, bs, GetParam()};
  CpuBackend backend(2);
  std::mt19937 rng(3);
  const int64_t page_floats = layout.page_bytes() / 4;
  std::vector<std::vector<float>> store((kv_len + bs - 1) / bs, std::vector<float>(page_floats));
  std::vector<float*> table;
  for (auto& p : store) table.push_back(p.data());
  const std::vector<float> k = Random(int64_t{kv_len} * kv_heads * d, rng);
  const std::vector<float> v = Random(int64_t{kv_len} * kv_heads * d, rng);
  std::vector<KvSlot> slots(kv_len);
  for (int32_t t = 0; t < kv_len; ++t) slots[t] = {table[t / bs], t % bs};
  backend.StoreKv(k.data(), v.data(), slots.data(), kv_len, layout);
  const int32_t nq = 300;
  const std::vector<float> q = Random(int64_t{nq} * heads * d, rng);
  std::vector<float> chunk(q.size());
  const AttentionSeq all{0, nq, kv_len, table.data()};
  backend.Attention(q.data(), {&all, 1}, heads, layout, 0.125f, chunk.data());
  for (int32_t j : {0, 17, 255, 256, 299}) {
    std::vector<float> one(int64_t{heads} * d);
    const AttentionSeq seq{0, 1, kv_len - nq + j + 1, table.data()};
    backend.Attention(q.data() + int64_t{j} * heads * d, {&seq, 1}, heads, layout, 0.125f,
                      one.data());
    for (int64_t i = 0; i < heads * d; ++i) {
      ASSERT_EQ(one[i], chunk[int64_t{j} * heads * d + i]) << "row " << j << " element " << i;
    }
  }
}

std::string DtypeName(const ::testing::TestParamInfo<KvDtype>& info) {
  return std::string(KvDtypeName(info.param));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, PagedAttentionDtypeTest, ::testing::ValuesIn(kAllDtypes),
                         DtypeName);

INSTANTIATE_TEST_SUITE_P(
    Shapes, PagedAttentionTest,
    ::testing::Combine(::testing::Values(Case{4, 4, 64, 16}, Case{9, 3, 64, 16}, Case{8, 1, 32, 8},
                                         Case{16, 2, 128, 1}, Case{6, 2, 16, 3}),
                       ::testing::ValuesIn(kAllDtypes)));

}  // namespace
}  // namespace restkv::kernels::cpu
