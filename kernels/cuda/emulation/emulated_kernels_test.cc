// Every kernel of kernels/cuda/*.cu, run on the host emulation through the
// launchers of launch.h, against the CPU backend (the reference) on the GPU
// tests' shapes: odd lengths, GQA ratios 1 / 4 / 8, page sizes 1 / 8 / 16,
// head_dim 64 and 128, split-K including empty splits. Device pointers are
// host pointers here, so the test hands the launchers plain vectors.
//
// Every element is checked: |got - ref| <= atol + rtol * |ref|, NaN fails.
// Tolerances: f32 on both sides, so element-wise ops and attention differ
// only by summation order and libm; conversions and copies are exact.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/thread_pool.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/sparse_prefill.h"
#include "kernels/cuda/launch.h"
#include "kernels/fp16.h"

namespace restkv::kernels::cuda {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& ref, double atol,
                 double rtol, const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << what << ": NaN at element " << i;
    ASSERT_LE(std::fabs(double(got[i]) - ref[i]), atol + rtol * std::fabs(ref[i]))
        << what << ": element " << i << " got " << got[i] << " want " << ref[i];
  }
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max<double>(diff, std::fabs(a[i] - b[i]));
  return diff;
}

class EmulatedKernelsTest : public ::testing::Test {
 protected:
  cpu::CpuBackend cpu_{2};
};

TEST_F(EmulatedKernelsTest, F32ToBf16RoundsLikeTheHost) {
  std::vector<float> x = Random(1001, 1, 100.0f);
  x.push_back(0.0f);
  x.push_back(-0.0f);
  x.push_back(INFINITY);
  std::vector<Bf16Bits> got(x.size(), 0xffff);
  ASSERT_TRUE(LaunchF32ToBf16(x.data(), static_cast<int64_t>(x.size()), got.data(), nullptr).ok());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(got[i], FloatToBf16(x[i])) << i;
}

TEST_F(EmulatedKernelsTest, EmbeddingMatchesCpu) {
  const int64_t vocab = 50, dim = 72;
  const std::vector<float> t = Random(vocab * dim, 2);
  std::vector<uint16_t> table(t.size());
  for (size_t i = 0; i < t.size(); ++i) table[i] = FloatToBf16(t[i]);
  auto cm = cpu_.PrepareMatrix(GgmlType::kBF16, vocab, dim, table.data());
  ASSERT_TRUE(cm.ok()) << cm.status();
  const std::vector<int32_t> ids = {0, 49, 3, 3, 17};
  std::vector<float> ref(ids.size() * dim), got(ref.size(), NAN);
  cpu_.Embedding(*cm, ids.data(), 5, ref.data());
  ASSERT_TRUE(LaunchEmbedding(table.data(), dim, ids.data(), 5, got.data(), nullptr).ok());
  EXPECT_EQ(got, ref);
}

TEST_F(EmulatedKernelsTest, RowAndElementwiseKernelsMatchCpu) {
  const int64_t m = 5, n = 1000;  // n not a multiple of the block
  const std::vector<float> x = Random(m * n, 3), w = Random(n, 4), b = Random(n, 5);
  {
    std::vector<float> ref(m * n), got(m * n, NAN);
    cpu_.RmsNorm(x.data(), w.data(), m, n, 1e-5f, ref.data());
    ASSERT_TRUE(LaunchRmsNorm(x.data(), w.data(), m, n, 1e-5f, got.data(), nullptr).ok());
    ExpectClose(got, ref, 1e-6, 1e-5, "rmsnorm");
    got = x;
    ASSERT_TRUE(LaunchRmsNorm(got.data(), w.data(), m, n, 1e-5f, got.data(), nullptr).ok());
    ExpectClose(got, ref, 1e-6, 1e-5, "rmsnorm in place");
  }
  {
    std::vector<float> ref = x, got = x;
    cpu_.AddBias(ref.data(), b.data(), m, n);
    ASSERT_TRUE(LaunchAddBias(got.data(), b.data(), m, n, nullptr).ok());
    ExpectClose(got, ref, 0, 0, "addbias");
  }
  const std::vector<float> y = Random(m * n, 6);
  {
    std::vector<float> ref = x, got = x;
    cpu_.Add(ref.data(), y.data(), m * n);
    ASSERT_TRUE(LaunchAdd(got.data(), y.data(), m * n, nullptr).ok());
    ExpectClose(got, ref, 0, 0, "add");
  }
  {
    std::vector<float> ref = x, got = x;
    cpu_.SwiGlu(ref.data(), y.data(), m * n);
    ASSERT_TRUE(LaunchSwiGlu(got.data(), y.data(), m * n, nullptr).ok());
    ExpectClose(got, ref, 1e-6, 1e-5, "swiglu");
  }
  {
    const int64_t width = 37;
    const std::vector<float> src = Random(20 * width, 7);
    const std::vector<int64_t> rows = {19, 0, 7, 7, 3};
    std::vector<float> ref(rows.size() * width), got(ref.size(), NAN);
    cpu_.GatherRows(src.data(), rows.data(), 5, width, ref.data());
    ASSERT_TRUE(LaunchGatherRows(src.data(), rows.data(), 5, width, got.data(), nullptr).ok());
    EXPECT_EQ(got, ref);
  }
}

TEST_F(EmulatedKernelsTest, RopeMatchesCpuForBothStylesAndLongPositions) {
  const int64_t m = 7;
  const int32_t heads = 3, d = 64;
  const std::vector<int32_t> pos = {0, 1, 100, 4095, 32767, 131071, 131072};
  std::vector<float> ff(d / 2, 1.0f);
  ff[2] = 2.0f;
  ff[3] = 8.0f;
  for (RopeStyle style : {RopeStyle::kNorm, RopeStyle::kNeox}) {
    for (bool factors : {false, true}) {
      RopeParams p;
      p.style = style;
      p.rot_dims = d;
      p.theta_base = 500000.0f;
      p.freq_factors = factors ? ff.data() : nullptr;
      const std::vector<float> x = Random(m * heads * d, 8);
      std::vector<float> ref = x, got = x;
      cpu_.Rope(ref.data(), pos.data(), m, heads, d, p);
      RopeLaunchParams lp;
      lp.neox = style == RopeStyle::kNeox;
      lp.rot_dims = d;
      lp.theta_scale = std::pow(p.theta_base, -2.0f / static_cast<float>(d));  // as CudaBackend
      lp.freq_factors = p.freq_factors;
      ASSERT_TRUE(LaunchRope(got.data(), pos.data(), m, heads, d, lp, nullptr).ok());
      ExpectClose(got, ref, 1e-5, 1e-5,
                  absl::StrCat("rope style ", int(style), " factors ", factors));
    }
  }
}

TEST_F(EmulatedKernelsTest, MatMulThroughTheGemmSeamMatchesCpu) {
  const int64_t rows = 67, cols = 96;
  const std::vector<float> wf = Random(rows * cols, 9);
  std::vector<uint16_t> wb(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) wb[i] = FloatToBf16(wf[i]);
  auto cm = cpu_.PrepareMatrix(GgmlType::kBF16, rows, cols, wb.data());
  ASSERT_TRUE(cm.ok()) << cm.status();
  for (int64_t m : {1, 5, 33}) {
    std::vector<float> x = Random(m * cols, 10 + static_cast<uint32_t>(m));
    for (float& v : x) v = Bf16ToFloat(FloatToBf16(v));  // what the GPU path multiplies
    std::vector<float> ref(m * rows), got(ref.size(), NAN);
    cpu_.MatMul(*cm, x.data(), m, ref.data());
    std::vector<Bf16Bits> xb(x.size());
    ASSERT_TRUE(LaunchF32ToBf16(x.data(), m * cols, xb.data(), nullptr).ok());
    ASSERT_TRUE(GemmBf16(nullptr, wb.data(), rows, cols, xb.data(), m, got.data(), nullptr).ok());
    ExpectClose(got, ref, 1e-4, 1e-4, absl::StrCat("batch ", m));
  }
  std::vector<float> y(1);
  EXPECT_EQ(GemmBf16(nullptr, wb.data(), rows, 0, nullptr, 1, y.data(), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- Paged attention ----------------------------------------------------------

struct AttentionCase {
  int32_t heads, kv_heads, head_dim, block_size, splits;
  std::vector<std::pair<int32_t, int32_t>> seqs;  // (num_q, kv_len)
  KvDtype dtype = KvDtype::kF32;                  // of the pages
  // Per-head lengths: KV head g of a sequence with P = kv_len - num_q cached
  // keys skips [P (g + 1) / (Hkv + 1), P), keys that hold real values.
  bool holes = false;
  // Sparse prefill (SparsePrefill{1 top, 1 local, 1 sink, 16 estimate rows}):
  // rows before the last 16 keys follow the pattern.
  bool sparse = false;
};

SparsePrefill TestSparseConfig() {
  SparsePrefill sp;
  sp.top_blocks = 1;
  sp.local_blocks = 1;
  sp.sink_blocks = 1;
  sp.estimate_rows = 16;
  sp.dense_rows = 16;
  return sp;
}

std::string CaseName(const ::testing::TestParamInfo<AttentionCase>& info) {
  const AttentionCase& c = info.param;
  std::string name =
      absl::StrFormat("H%dkv%dd%db%ds%d", c.heads, c.kv_heads, c.head_dim, c.block_size, c.splits);
  for (auto [nq, kv] : c.seqs) absl::StrAppend(&name, "_q", nq, "n", kv);
  if (c.dtype != KvDtype::kF32) absl::StrAppend(&name, "_", std::string(KvDtypeName(c.dtype)));
  if (c.holes) absl::StrAppend(&name, "_holes");
  if (c.sparse) absl::StrAppend(&name, "_sparse");
  return name;
}
// Readable parameter values in ctest (the default prints the vector's bytes).
void PrintTo(const AttentionCase& c, std::ostream* os) { *os << CaseName({c, 0}); }

class EmulatedAttentionTest : public EmulatedKernelsTest,
                              public ::testing::WithParamInterface<AttentionCase> {};

// StoreKv writes every sequence's K/V into pages of the case's dtype
// scattered over one slab (checked bit for bit against the CPU's: the same
// rounding, the same q8_0 scales), then paged attention with the case's
// split count runs over the same pages on both sides.
TEST_P(EmulatedAttentionTest, StoreKvAndAttentionMatchCpu) {
  const AttentionCase& c = GetParam();
  const int32_t H = c.heads, Hkv = c.kv_heads, d = c.head_dim, bs = c.block_size;
  const int32_t group = H / Hkv;
  const KvPageLayout layout{Hkv, d, bs, c.dtype};
  const int64_t page_floats = layout.page_bytes() / 4;
  int32_t total_pages = 0;
  for (auto [nq, kv] : c.seqs) total_pages += (kv + bs - 1) / bs;
  std::vector<float> cpu_slab(total_pages * page_floats, 0.0f), emu_slab(cpu_slab);
  std::vector<int32_t> order(total_pages);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(11);
  std::shuffle(order.begin(), order.end(), rng);

  std::vector<std::vector<float*>> cpu_tables, emu_tables;
  std::vector<float*> flat_table;
  std::vector<DeviceAttentionSeq> dseqs;
  std::vector<DeviceAttentionTile> tiles;
  std::vector<AttentionSeq> cseqs;
  int32_t next_page = 0, num_tokens = 0;
  for (size_t s = 0; s < c.seqs.size(); ++s) {
    const auto [nq, kv] = c.seqs[s];
    std::vector<float*> ct, et;
    for (int32_t p = 0; p < (kv + bs - 1) / bs; ++p) {
      const int32_t id = order[next_page++];
      ct.push_back(cpu_slab.data() + id * page_floats);
      et.push_back(emu_slab.data() + id * page_floats);
    }
    const std::vector<float> k = Random(int64_t{kv} * Hkv * d, 100 + s);
    const std::vector<float> v = Random(int64_t{kv} * Hkv * d, 200 + s);
    std::vector<KvSlot> cslots(kv);
    std::vector<DeviceKvSlot> eslots(kv);
    for (int32_t t = 0; t < kv; ++t) {
      cslots[t] = {ct[t / bs], t % bs};
      eslots[t] = {et[t / bs], t % bs};
    }
    cpu_.StoreKv(k.data(), v.data(), cslots.data(), kv, layout);
    ASSERT_TRUE(
        LaunchStoreKv(k.data(), v.data(), eslots.data(), kv, ToDeviceKvLayout(layout), nullptr)
            .ok());
    dseqs.push_back({num_tokens, nq, kv, static_cast<int32_t>(flat_table.size())});
    flat_table.insert(flat_table.end(), et.begin(), et.end());
    for (int32_t r = 0; r < nq * group; r += kAttentionRowsPerTile) {
      tiles.push_back({static_cast<int32_t>(s), r});
    }
    cpu_tables.push_back(std::move(ct));
    emu_tables.push_back(std::move(et));
    num_tokens += nq;
  }
  std::vector<std::vector<int32_t>> hole_begin(c.seqs.size());
  std::vector<int32_t> flat_holes;
  for (size_t s = 0; s < c.seqs.size(); ++s) {
    cseqs.push_back({dseqs[s].q_begin, c.seqs[s].first, c.seqs[s].second, cpu_tables[s].data()});
    const int32_t past = c.seqs[s].second - c.seqs[s].first;
    if (!c.holes || past == 0) continue;
    for (int32_t g = 0; g < Hkv; ++g) hole_begin[s].push_back(past * (g + 1) / (Hkv + 1));
    cseqs.back().hole_begin = hole_begin[s].data();
    cseqs.back().hole_end = past;
    dseqs[s].hole_index = static_cast<int32_t>(flat_holes.size());
    dseqs[s].hole_end = past;
    flat_holes.insert(flat_holes.end(), hole_begin[s].begin(), hole_begin[s].end());
  }
  const SparsePrefill sparse_config = TestSparseConfig();
  if (c.sparse) {
    for (size_t s = 0; s < c.seqs.size(); ++s) {
      cseqs[s].sparse = &sparse_config;
      cseqs[s].sparse_dense_from = c.seqs[s].second - sparse_config.dense_rows;
    }
  }
  for (size_t i = 0; i < cpu_slab.size(); ++i) {
    ASSERT_EQ(std::memcmp(&emu_slab[i], &cpu_slab[i], sizeof(float)), 0)
        << "StoreKv: page bytes differ at float " << i << " of " << cpu_slab.size() << " (page "
        << static_cast<int64_t>(i) / page_floats << ")";
  }

  const std::vector<float> q = Random(int64_t{num_tokens} * H * d, 12);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<float> ref(q.size()), got(q.size(), NAN);
  cpu_.Attention(q.data(), cseqs, H, layout, scale, ref.data());

  std::vector<float> partials(static_cast<size_t>(c.splits) * num_tokens * H * (d + 2), NAN);
  AttentionLaunch a;
  a.q = q.data();
  a.seqs = dseqs.data();
  a.page_table = flat_table.data();
  a.tiles = tiles.data();
  a.hole_begin = flat_holes.empty() ? nullptr : flat_holes.data();
  a.num_tiles = static_cast<int32_t>(tiles.size());
  a.heads = H;
  a.kv_heads = Hkv;
  a.head_dim = d;
  a.block_size = bs;
  a.kv = ToDeviceKvLayout(layout);
  a.scale = scale;
  a.num_splits = c.splits;
  a.num_tokens = num_tokens;
  a.partial_o = partials.data();
  a.partial_ml = partials.data() + static_cast<size_t>(c.splits) * num_tokens * H * d;
  a.out = got.data();
  // Sparse prefill: the pattern kernels' flags equal the CPU estimate's.
  std::vector<uint8_t> flags;
  std::vector<float> mass;
  if (c.sparse) {
    ThreadPool pool(1);
    for (size_t s = 0; s < c.seqs.size(); ++s) {
      const AttentionSeq& cs = cseqs[s];
      if (cs.kv_len - cs.num_q >= cs.sparse_dense_from) continue;  // no sparse row: dense
      const std::vector<uint8_t> want =
          cpu::EstimateSparsePattern(pool, q.data(), cs, H, layout, scale, sparse_config);
      const int32_t blocks = (cs.kv_len + kSparseBlock - 1) / kSparseBlock;
      ASSERT_EQ(want.size(), static_cast<size_t>(H) * blocks);
      dseqs[s].sparse_index = static_cast<int32_t>(flags.size());
      dseqs[s].sparse_dense_from = cs.sparse_dense_from;
      dseqs[s].sparse_local = sparse_config.local_blocks;
      flags.resize(flags.size() + want.size(), 7);
      mass.assign(want.size(), NAN);
      SparsePatternLaunch p;
      p.q = q.data();
      p.seq = dseqs[s];
      p.page_table = flat_table.data();
      p.heads = H;
      p.kv = ToDeviceKvLayout(layout);
      p.scale = scale;
      p.estimate_rows = sparse_config.estimate_rows;
      p.top_blocks = sparse_config.top_blocks;
      p.sink_blocks = sparse_config.sink_blocks;
      p.mass = mass.data();
      p.keep = flags.data() + dseqs[s].sparse_index;
      ASSERT_TRUE(LaunchSparsePattern(p, nullptr).ok());
      EXPECT_EQ(std::vector<uint8_t>(p.keep, p.keep + want.size()), want) << "sequence " << s;
      EXPECT_LT(std::count(want.begin(), want.end(), 1), static_cast<int64_t>(want.size()))
          << "sequence " << s << ": the pattern is dense, the case tests nothing";
    }
    ASSERT_FALSE(flags.empty()) << "no sequence has a sparse row";
    a.sparse_keep = flags.data();
  }
  ASSERT_TRUE(LaunchPagedAttention(a, nullptr).ok());
  ExpectClose(got, ref, 1e-5, 1e-4, "attention");
  if (c.sparse) {
    std::vector<float> dense_ref(q.size());
    for (AttentionSeq& cs : cseqs) cs.sparse = nullptr;
    cpu_.Attention(q.data(), cseqs, H, layout, scale, dense_ref.data());
    EXPECT_GT(MaxAbsDiff(dense_ref, got), 1e-3)
        << "the pattern changed nothing: the case does not test it";
  }
  if (c.sparse && c.splits == 1) {
    // Every block flagged: bit for bit the dense kernel's output (one case:
    // two more emulated launches).
    std::vector<float> dense_got(q.size(), NAN), all_got(q.size(), NAN);
    a.sparse_keep = nullptr;
    a.out = dense_got.data();
    ASSERT_TRUE(LaunchPagedAttention(a, nullptr).ok());
    std::fill(flags.begin(), flags.end(), 1);
    a.sparse_keep = flags.data();
    a.out = all_got.data();
    ASSERT_TRUE(LaunchPagedAttention(a, nullptr).ok());
    EXPECT_EQ(std::memcmp(dense_got.data(), all_got.data(), q.size() * sizeof(float)), 0)
        << "a dense pattern differs from dense attention";
  }
  if (!flat_holes.empty()) {
    // The padding's keys hold real values: attending to them must show.
    std::vector<float> dense(q.size());
    for (AttentionSeq& cs : cseqs) cs.hole_begin = nullptr;
    cpu_.Attention(q.data(), cseqs, H, layout, scale, dense.data());
    EXPECT_GT(MaxAbsDiff(dense, got), 1e-3)
        << "the holes changed nothing: the case does not test them";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, EmulatedAttentionTest,
    ::testing::Values(
        // GQA 1, prefill of lengths off the page and tile sizes.
        AttentionCase{4, 4, 64, 16, 1, {{37, 37}, {1, 1}, {19, 19}}},
        // GQA 4, head_dim 128, page 8, chunked prefill (queries are the cache's tail).
        AttentionCase{8, 2, 128, 8, 1, {{45, 301}, {17, 17}}},
        // The same, split three ways.
        AttentionCase{8, 2, 128, 8, 3, {{45, 301}, {17, 17}}},
        // GQA 8, decode batch with split-K: 77 keys in 4 splits of 32 leave the last empty.
        AttentionCase{16, 2, 128, 16, 4, {{1, 301}, {1, 77}, {2, 130}}},
        // GQA 8, page size 1, prefill and decode together.
        AttentionCase{8, 1, 64, 1, 1, {{33, 33}, {1, 50}}},
        // Page size 1, 8 splits over 50 keys: six empty splits.
        AttentionCase{8, 1, 64, 1, 8, {{1, 50}, {3, 3}}},
        // GQA 4, head_dim 128, page 16, short chunk over a longer cache, 2 splits.
        AttentionCase{4, 1, 128, 16, 2, {{3, 100}, {1, 16}}}),
    CaseName);

// 16- and 8-bit pages on the cases that cover every index path: GQA 4 with
// page 8 and splits, split-K decode with an empty split, page size 1.
INSTANTIATE_TEST_SUITE_P(
    Dtypes, EmulatedAttentionTest,
    ::testing::Values(
        AttentionCase{8, 2, 128, 8, 3, {{45, 301}, {17, 17}}, KvDtype::kF16},
        AttentionCase{16, 2, 128, 16, 4, {{1, 301}, {1, 77}, {2, 130}}, KvDtype::kF16},
        AttentionCase{8, 1, 64, 1, 8, {{1, 50}, {3, 3}}, KvDtype::kF16},
        AttentionCase{8, 2, 128, 8, 3, {{45, 301}, {17, 17}}, KvDtype::kBf16},
        AttentionCase{16, 2, 128, 16, 4, {{1, 301}, {1, 77}, {2, 130}}, KvDtype::kBf16},
        AttentionCase{8, 1, 64, 1, 8, {{1, 50}, {3, 3}}, KvDtype::kBf16},
        AttentionCase{8, 2, 128, 8, 3, {{45, 301}, {17, 17}}, KvDtype::kQ8_0},
        AttentionCase{16, 2, 128, 16, 4, {{1, 301}, {1, 77}, {2, 130}}, KvDtype::kQ8_0},
        AttentionCase{8, 1, 64, 1, 8, {{1, 50}, {3, 3}}, KvDtype::kQ8_0},
        AttentionCase{4, 4, 64, 16, 1, {{37, 37}, {1, 1}, {19, 19}}, KvDtype::kQ8_0}),
    CaseName);

// Per-head lengths (AdaKV padding) on chunked prefill, split-K decode (holes
// that cover whole key tiles, and splits that are all padding) and page
// size 1, in every dtype.
INSTANTIATE_TEST_SUITE_P(
    Holes, EmulatedAttentionTest,
    ::testing::Values(
        AttentionCase{8, 2, 128, 8, 3, {{45, 301}, {17, 17}}, KvDtype::kF32, true},
        AttentionCase{16, 2, 128, 16, 4, {{1, 301}, {1, 77}, {2, 130}}, KvDtype::kF16, true},
        AttentionCase{8, 1, 64, 1, 8, {{1, 50}, {3, 3}}, KvDtype::kQ8_0, true},
        AttentionCase{4, 4, 64, 16, 1, {{5, 200}, {1, 90}, {19, 19}}, KvDtype::kBf16, true}),
    CaseName);

// Sparse prefill: whole prompts and a chunk over a longer cache, with
// split-K and decode rows (dense) beside them, in three dtypes. Five key
// blocks, so a row of block 3 (sink 0, top 1, own 3) misses one of 1 and 2.
INSTANTIATE_TEST_SUITE_P(
    Sparse, EmulatedAttentionTest,
    ::testing::Values(
        AttentionCase{1, 1, 64, 16, 1, {{260, 260}}, KvDtype::kF32, false, true},
        AttentionCase{4, 2, 64, 8, 3, {{30, 260}, {1, 90}}, KvDtype::kF16, false, true},
        AttentionCase{2, 1, 128, 16, 2, {{260, 260}, {3, 3}}, KvDtype::kQ8_0, false, true}),
    CaseName);

TEST_F(EmulatedKernelsTest, AttentionRejectsUnbuiltHeadDimsAndBadSplits) {
  AttentionLaunch a;
  a.heads = 4;
  a.kv_heads = 4;
  a.num_tiles = 1;
  a.num_splits = 1;
  a.head_dim = 96;
  EXPECT_EQ(LaunchPagedAttention(a, nullptr).code(), absl::StatusCode::kInvalidArgument);
  // A layout that disagrees with the call (or is missing) launches nothing.
  a.head_dim = 64;
  a.block_size = 16;
  a.kv = ToDeviceKvLayout({4, 64, 8, KvDtype::kBf16});
  EXPECT_EQ(LaunchPagedAttention(a, nullptr).code(), absl::StatusCode::kInvalidArgument);
  a.kv = DeviceKvLayout{};
  EXPECT_EQ(LaunchPagedAttention(a, nullptr).code(), absl::StatusCode::kInvalidArgument);
  a.kv = ToDeviceKvLayout({4, 64, 16, KvDtype::kBf16});
  a.head_dim = 64;
  a.num_splits = 0;
  EXPECT_EQ(LaunchPagedAttention(a, nullptr).code(), absl::StatusCode::kInvalidArgument);
  a.num_splits = 1;
  a.kv_heads = 3;
  EXPECT_EQ(LaunchPagedAttention(a, nullptr).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace restkv::kernels::cuda
