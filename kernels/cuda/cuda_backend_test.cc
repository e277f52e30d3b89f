// Every CudaBackend operation against the CPU backend (the reference) on
// random inputs. Tests skip when no CUDA device is present (CI builds them
// but has no GPU).
//
// Tolerances: activations and KV are fp32 on both sides, so element-wise ops
// and attention differ only by summation order and libm (1e-4 relative).
// MatMul compares bf16 weights and bf16-representable activations, so cuBLAS
// (fp32 accumulation) differs from OpenBLAS only by order; quantised weights
// are compared against the dequantised matrix with a bf16-rounding bound.
#include "kernels/cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/quantize_ref.h"
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

std::vector<float> RoundToBf16(std::vector<float> v) {
  for (float& x : v) x = Bf16ToFloat(FloatToBf16(x));
  return v;
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, double rel,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << what << " element " << i;
    ASSERT_NEAR(got[i], want[i], rel * (1.0 + std::fabs(want[i]))) << what << " element " << i;
  }
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (DeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
    auto b = CudaBackend::Create({});
    ASSERT_TRUE(b.ok()) << b.status();
    gpu_ = std::move(*b);
  }

  // A device buffer holding `host`.
  float* Upload(const std::vector<float>& host) {
    auto buf = gpu_->Allocate(std::max<size_t>(host.size(), 1) * sizeof(float));
    EXPECT_TRUE(buf.ok()) << buf.status();
    float* p = (*buf)->floats();
    gpu_->CopyFromHost(host.data(), p, host.size());
    buffers_.push_back(std::move(*buf));
    return p;
  }
  float* DeviceZeros(size_t n) { return Upload(std::vector<float>(n, 0.0f)); }
  std::vector<float> Download(const float* p, size_t n) {
    std::vector<float> h(n);
    gpu_->CopyToHost(p, h.data(), n);
    EXPECT_TRUE(gpu_->status().ok()) << gpu_->status();  // every op before this one succeeded
    return h;
  }

  std::unique_ptr<CudaBackend> gpu_;
  cpu::CpuBackend cpu_{2};
  std::vector<std::unique_ptr<Buffer>> buffers_;
};

TEST(CudaDeviceTest, CountIsNonNegativeWithoutAborting) { EXPECT_GE(DeviceCount(), 0); }

TEST(CudaDeviceTest, CreateFailsCleanlyForAMissingDevice) {
  auto b = CudaBackend::Create({.device = DeviceCount()});
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition) << b.status();
}

TEST_F(CudaBackendTest, CopiesRoundTripAndGatherRows) {
  const std::vector<float> a = Random(1000, 1);
  float* d = Upload(a);
  EXPECT_EQ(Download(d, a.size()), a);
  float* e = DeviceZeros(a.size());
  gpu_->CopyDevice(d, e, a.size());
  EXPECT_EQ(Download(e, a.size()), a);
  gpu_->CopyDevice(d, d + 10, 500);  // overlapping: memmove semantics
  std::vector<float> want = a;
  std::copy(a.begin(), a.begin() + 500, want.begin() + 10);
  EXPECT_EQ(Download(d, a.size()), want);

  const int64_t width = 37;
  const std::vector<float> src = Random(20 * width, 2);
  const std::vector<int64_t> rows = {19, 0, 7, 7, 3};
  std::vector<float> ref(rows.size() * width);
  cpu_.GatherRows(src.data(), rows.data(), 5, width, ref.data());
  float* out = DeviceZeros(ref.size());
  gpu_->GatherRows(Upload(src), rows.data(), 5, width, out);
  EXPECT_EQ(Download(out, ref.size()), ref);
}

TEST_F(CudaBackendTest, MatMulBf16WeightsMatchesCpu) {
  // Shapes not multiples of any tile: 67 rows, 96 cols; batches 1..33.
  const int64_t rows = 67, cols = 96;
  const std::vector<float> w = RoundToBf16(Random(rows * cols, 3));
  std::vector<uint16_t> wb(w.size());
  for (size_t i = 0; i < w.size(); ++i) wb[i] = FloatToBf16(w[i]);
  auto gm = gpu_->PrepareMatrix(GgmlType::kBF16, rows, cols, wb.data());
  auto cm = cpu_.PrepareMatrix(GgmlType::kBF16, rows, cols, wb.data());
  ASSERT_TRUE(gm.ok() && cm.ok()) << gm.status() << cm.status();
  for (int64_t m : {1, 5, 33}) {
    const std::vector<float> x = RoundToBf16(Random(m * cols, 4 + static_cast<uint32_t>(m)));
    std::vector<float> ref(m * rows);
    cpu_.MatMul(*cm, x.data(), m, ref.data());
    float* y = DeviceZeros(ref.size());
    gpu_->MatMul(*gm, Upload(x), m, y);
    ExpectClose(Download(y, ref.size()), ref, 1e-4, "batch " + std::to_string(m));
  }
}

TEST_F(CudaBackendTest, MatMulQuantisedWeightsMatchDequantised) {
  for (GgmlType type : {GgmlType::kQ4_0, GgmlType::kQ8_0, GgmlType::kF32}) {
    const int64_t rows = 45, cols = 256;
    const std::vector<float> w = Random(rows * cols, 5);
    const std::string bytes = QuantizeMatrix(type, w.data(), rows, cols);
    std::vector<float> wd(rows * cols);
    for (int64_t r = 0; r < rows; ++r) {
      DequantizeRow(type, bytes.data() + r * RowBytes(type, cols), wd.data() + r * cols, cols);
    }
    auto gm = gpu_->PrepareMatrix(type, rows, cols, bytes.data());
    ASSERT_TRUE(gm.ok()) << gm.status();
    const int64_t m = 3;
    const std::vector<float> x = Random(m * cols, 6);
    std::vector<float> ref(m * rows, 0.0f);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < rows; ++r) {
        double acc = 0;
        for (int64_t c = 0; c < cols; ++c) acc += double(wd[r * cols + c]) * x[i * cols + c];
        ref[i * rows + r] = static_cast<float>(acc);
      }
    float* y = DeviceZeros(ref.size());
    gpu_->MatMul(*gm, Upload(x), m, y);
    const std::vector<float> got = Download(y, ref.size());
    // Weights and activations each lose up to 2^-9 relative to bf16:
    // |err| <~ 2^-8 * sum |w x| ~ 2^-8 * 256 * 0.8 -> bound 1.0 absolute.
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_NEAR(got[i], ref[i], 1.0) << "type " << static_cast<int>(type) << " element " << i;
    }
  }
}

TEST_F(CudaBackendTest, EmbeddingMatchesCpu) {
  const int64_t vocab = 50, dim = 64;
  std::vector<uint16_t> table(vocab * dim);
  const std::vector<float> t = Random(vocab * dim, 7);
  for (size_t i = 0; i < t.size(); ++i) table[i] = FloatToBf16(t[i]);
  auto gm = gpu_->PrepareMatrix(GgmlType::kBF16, vocab, dim, table.data());
  auto cm = cpu_.PrepareMatrix(GgmlType::kBF16, vocab, dim, table.data());
  ASSERT_TRUE(gm.ok() && cm.ok());
  const std::vector<int32_t> ids = {0, 49, 3, 3, 17};
  std::vector<float> ref(ids.size() * dim);
  cpu_.Embedding(*cm, ids.data(), 5, ref.data());
  float* out = DeviceZeros(ref.size());
  gpu_->Embedding(*gm, ids.data(), 5, out);
  EXPECT_EQ(Download(out, ref.size()), ref);
}

TEST_F(CudaBackendTest, RmsNormAddBiasAddSwiGluMatchCpu) {
  const int64_t m = 7, n = 1000;  // n not a multiple of the block
  const std::vector<float> x = Random(m * n, 8), w = Random(n, 9), b = Random(n, 10);
  std::vector<uint16_t> wh(n);
  for (int64_t i = 0; i < n; ++i) wh[i] = FloatToFp16(w[i]);
  auto gw = gpu_->PrepareVector(GgmlType::kF16, n, wh.data());
  auto cw = cpu_.PrepareVector(GgmlType::kF16, n, wh.data());
  ASSERT_TRUE(gw.ok() && cw.ok());
  {
    std::vector<float> ref(m * n);
    cpu_.RmsNorm(x.data(), *cw, m, n, 1e-5f, ref.data());
    float* dx = Upload(x);
    float* y = DeviceZeros(ref.size());
    gpu_->RmsNorm(dx, *gw, m, n, 1e-5f, y);
    ExpectClose(Download(y, ref.size()), ref, 1e-5, "rmsnorm");
    gpu_->RmsNorm(dx, *gw, m, n, 1e-5f, dx);  // in place
    ExpectClose(Download(dx, ref.size()), ref, 1e-5, "rmsnorm in place");
  }
  {
    std::vector<float> ref = x;
    cpu_.AddBias(ref.data(), b.data(), m, n);
    float* dx = Upload(x);
    gpu_->AddBias(dx, Upload(b), m, n);
    ExpectClose(Download(dx, ref.size()), ref, 1e-6, "addbias");
  }
  {
    const std::vector<float> y = Random(m * n, 11);
    std::vector<float> ref = x;
    cpu_.Add(ref.data(), y.data(), m * n);
    float* dx = Upload(x);
    gpu_->Add(dx, Upload(y), m * n);
    ExpectClose(Download(dx, ref.size()), ref, 1e-6, "add");
  }
  {
    const std::vector<float> up = Random(m * n, 12);
    std::vector<float> ref = x;
    cpu_.SwiGlu(ref.data(), up.data(), m * n);
    float* dg = Upload(x);
    gpu_->SwiGlu(dg, Upload(up), m * n);
    ExpectClose(Download(dg, ref.size()), ref, 1e-5, "swiglu");
  }
}

TEST_F(CudaBackendTest, RopeMatchesCpuForBothStylesAndLongPositions) {
  const int64_t m = 9;
  const int32_t heads = 3, d = 64;
  const std::vector<int32_t> pos = {0, 1, 2, 100, 4095, 4096, 32767, 131071, 131072};
  const std::vector<float> ff = {1.0f, 1.0f, 2.0f, 4.0f, 8.0f, 8.0f, 1.5f, 1.0f, 1.0f, 1.0f, 1.0f,
                                 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f,
                                 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  float* dff = Upload(ff);
  for (RopeStyle style : {RopeStyle::kNorm, RopeStyle::kNeox}) {
    for (bool factors : {false, true}) {
      RopeParams p;
      p.style = style;
      p.rot_dims = d;
      p.theta_base = 500000.0f;
      const std::vector<float> x = Random(m * heads * d, 13);
      std::vector<float> ref = x;
      p.freq_factors = factors ? ff.data() : nullptr;
      cpu_.Rope(ref.data(), pos.data(), m, heads, d, p);
      float* dx = Upload(x);
      p.freq_factors = factors ? dff : nullptr;
      gpu_->Rope(dx, pos.data(), m, heads, d, p);
      // Angles agree exactly; cosf/sinf of arguments near 1e5 may differ
      // from glibc by an ulp of the argument's reduction.
      ExpectClose(Download(dx, ref.size()), ref, 2e-4, "rope");
    }
  }
}

TEST_F(CudaBackendTest, UnsupportedHeadDimIsAStickyInvalidArgument) {
  float* page = DeviceZeros(2 * 4 * 16 * 96);
  float* const pages[] = {page};
  const AttentionSeq seq{0, 1, 1, pages};
  float* q = DeviceZeros(4 * 96);
  float* out = DeviceZeros(4 * 96);
  ASSERT_TRUE(gpu_->status().ok()) << gpu_->status();
  gpu_->Attention(q, {&seq, 1}, 4, KvPageLayout{4, 96, 16, KvDtype::kF32}, 1.0f, out);
  EXPECT_EQ(gpu_->status().code(), absl::StatusCode::kInvalidArgument) << gpu_->status();
  // Sticky: later operations do nothing and Allocate reports the same error.
  auto buf = gpu_->Allocate(64);
  EXPECT_EQ(buf.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CudaBackendTest, AnImpossibleAllocationIsResourceExhaustedAndNotSticky) {
  auto buf = gpu_->Allocate(size_t{1} << 52);
  EXPECT_EQ(buf.status().code(), absl::StatusCode::kResourceExhausted) << buf.status();
  EXPECT_TRUE(gpu_->status().ok()) << gpu_->status();
  EXPECT_TRUE(gpu_->Allocate(1024).ok());
}

// Paged attention: K/V written by StoreKv (checked against the CPU's), then
// Attention on both backends over the same pages.
struct AttentionCase {
  int32_t heads, kv_heads, head_dim, block_size;
  std::vector<std::pair<int32_t, int32_t>> seqs;  // (num_q, kv_len)
  KvDtype dtype = KvDtype::kF32;                  // of the pages
  // Sparse prefill: rows before each sequence's last 16 keys attend to the
  // pattern of SparsePrefill{1 top, 1 local, 1 sink, 16 estimate rows}.
  bool sparse = false;
};

// Stable, readable test names (the default prints the vector's bytes,
// pointers included, which differ between ctest's discovery and its run).
std::string CaseName(const ::testing::TestParamInfo<AttentionCase>& info) {
  const AttentionCase& c = info.param;
  // (StrAppend: GCC 12 warns falsely on literal + std::string here.)
  std::string name =
      absl::StrFormat("H%dkv%dd%db%d", c.heads, c.kv_heads, c.head_dim, c.block_size);
  for (auto [nq, kv] : c.seqs) absl::StrAppend(&name, "_q", nq, "n", kv);
  if (c.dtype != KvDtype::kF32) absl::StrAppend(&name, "_", std::string(KvDtypeName(c.dtype)));
  if (c.sparse) absl::StrAppend(&name, "_sparse");
  return name;
}
void PrintTo(const AttentionCase& c, std::ostream* os) { *os << CaseName({c, 0}); }

class CudaAttentionTest : public CudaBackendTest,
                          public ::testing::WithParamInterface<AttentionCase> {};

TEST_P(CudaAttentionTest, MatchesCpu) {
  const AttentionCase& c = GetParam();
  const int32_t H = c.heads, Hkv = c.kv_heads, d = c.head_dim, bs = c.block_size;
  const KvPageLayout layout{Hkv, d, bs, c.dtype};
  const int64_t page_floats = layout.page_bytes() / 4;
  // Pages of every sequence, interleaved in one slab in a scrambled order so
  // block tables are not contiguous.
  int32_t total_pages = 0;
  for (auto [nq, kv] : c.seqs) total_pages += (kv + bs - 1) / bs;
  std::vector<float> host_slab(total_pages * page_floats, 0.0f);
  float* dev_slab = DeviceZeros(host_slab.size());
  std::vector<int32_t> order(total_pages);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(14);
  std::shuffle(order.begin(), order.end(), rng);

  std::vector<std::vector<float*>> host_tables, dev_tables;
  int32_t next_page = 0;
  int32_t T = 0;
  for (auto [nq, kv] : c.seqs) {
    std::vector<float*> ht, dt;
    for (int32_t p = 0; p < (kv + bs - 1) / bs; ++p) {
      const int32_t id = order[next_page++];
      ht.push_back(host_slab.data() + id * page_floats);
      dt.push_back(dev_slab + id * page_floats);
    }
    host_tables.push_back(ht);
    dev_tables.push_back(dt);
    T += nq;
  }
  // Write every sequence's K/V (all kv_len tokens) with StoreKv.
  for (size_t s = 0; s < c.seqs.size(); ++s) {
    const int32_t kv = c.seqs[s].second;
    const std::vector<float> k = Random(int64_t{kv} * Hkv * d, 100 + s);
    const std::vector<float> v = Random(int64_t{kv} * Hkv * d, 200 + s);
    std::vector<KvSlot> hs(kv), ds(kv);
    for (int32_t t = 0; t < kv; ++t) {
      hs[t] = {host_tables[s][t / bs], t % bs};
      ds[t] = {dev_tables[s][t / bs], t % bs};
    }
    cpu_.StoreKv(k.data(), v.data(), hs.data(), kv, layout);
    gpu_->StoreKv(Upload(k), Upload(v), ds.data(), kv, layout);
  }
  // Only slots < kv_len are written on either side, the rest stay zero;
  // compared as bytes (q8_0 pages read as floats hold NaN patterns).
  const std::vector<float> dev_pages = Download(dev_slab, host_slab.size());
  ASSERT_EQ(std::memcmp(dev_pages.data(), host_slab.data(), host_slab.size() * sizeof(float)), 0)
      << "StoreKv";

  const std::vector<float> q = Random(int64_t{T} * H * d, 15);
  std::vector<AttentionSeq> hseqs, dseqs;
  int32_t q_begin = 0;
  for (size_t s = 0; s < c.seqs.size(); ++s) {
    const auto [nq, kv] = c.seqs[s];
    hseqs.push_back({q_begin, nq, kv, host_tables[s].data()});
    dseqs.push_back({q_begin, nq, kv, dev_tables[s].data()});
    q_begin += nq;
  }
  SparsePrefill sparse;
  sparse.top_blocks = 1;
  sparse.local_blocks = 1;
  sparse.sink_blocks = 1;
  sparse.estimate_rows = 16;
  sparse.dense_rows = 16;
  if (c.sparse) {
    for (size_t s = 0; s < c.seqs.size(); ++s) {
      for (AttentionSeq* a : {&hseqs[s], &dseqs[s]}) {
        a->sparse = &sparse;
        a->sparse_dense_from = a->kv_len - sparse.dense_rows;
      }
    }
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<float> ref(int64_t{T} * H * d);
  cpu_.Attention(q.data(), hseqs, H, layout, scale, ref.data());
  float* out = DeviceZeros(ref.size());
  gpu_->Attention(Upload(q), dseqs, H, layout, scale, out);
  const std::vector<float> got = Download(out, ref.size());
  ExpectClose(got, ref, 1e-4, "attention");
  if (c.sparse) {
    // The pattern must have changed the result, or the case tests nothing.
    std::vector<float> dense(ref.size());
    for (AttentionSeq& a : hseqs) a.sparse = nullptr;
    cpu_.Attention(q.data(), hseqs, H, layout, scale, dense.data());
    double diff = 0;
    for (size_t i = 0; i < dense.size(); ++i)
      diff = std::max<double>(diff, std::fabs(dense[i] - got[i]));
    EXPECT_GT(diff, 1e-3) << "sparse equals dense";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttentionTest,
    ::testing::Values(
        // GQA ratio 1, prefill of lengths off the block and tile sizes.
        AttentionCase{4, 4, 64, 16, {{37, 37}, {1, 1}, {100, 100}}},
        // Ratio 4, chunked prefill (queries are the tail of the cache).
        AttentionCase{8, 2, 128, 16, {{45, 301}, {17, 17}}},
        // Ratio 8, batch of decodes with long caches: exercises split-K.
        AttentionCase{16, 2, 128, 16, {{1, 3001}, {1, 77}, {1, 1025}, {2, 4099}}},
        // Ratio 8, head_dim 64, block size 32, one long prefill.
        AttentionCase{8, 1, 64, 32, {{700, 700}}},
        // Ratio 1 decode of a single long sequence (max splits).
        AttentionCase{4, 4, 128, 16, {{1, 20000}}},
        // bf16 (the CUDA default) and q8_0 pages: prefill chunk and split-K decode.
        AttentionCase{8, 2, 128, 16, {{45, 301}, {17, 17}}, KvDtype::kBf16},
        AttentionCase{16, 2, 128, 16, {{1, 3001}, {1, 77}, {2, 4099}}, KvDtype::kBf16},
        AttentionCase{8, 1, 64, 32, {{700, 700}}, KvDtype::kF16},
        AttentionCase{8, 2, 128, 16, {{45, 301}, {17, 17}}, KvDtype::kQ8_0},
        AttentionCase{16, 2, 128, 16, {{1, 3001}, {1, 77}, {2, 4099}}, KvDtype::kQ8_0}),
    CaseName);

// Sparse prefill: whole prompts, a chunk over a longer cache, decode rows
// (dense) beside them.
INSTANTIATE_TEST_SUITE_P(
    Sparse, CudaAttentionTest,
    ::testing::Values(
        AttentionCase{8, 2, 128, 16, {{1000, 1000}, {200, 2000}}, KvDtype::kF32, true},
        AttentionCase{16, 2, 128, 16, {{700, 700}, {1, 77}}, KvDtype::kBf16, true},
        AttentionCase{8, 1, 64, 32, {{600, 600}}, KvDtype::kQ8_0, true}),
    CaseName);

}  // namespace
}  // namespace restkv::kernels::cuda
