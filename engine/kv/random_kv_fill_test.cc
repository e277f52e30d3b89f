#include "engine/kv/random_kv_fill.h"

#include <cmath>
#include <cstring>

#include "engine/kv/block_pool.h"
#include "engine/kv/page_math.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::engine {
namespace {

constexpr int32_t kLayers = 3, kHeads = 2, kDim = 8, kBlock = 16;

KvPolicyConfig Policy(KvPolicyKind kind, int32_t budget) {
  KvPolicyConfig p;
  p.kind = kind;
  p.budget = budget;
  return p;
}

// K row of (slot, head) on `layer` of an f32 sequence.
const float* KRow(const SequenceKv& kv, int32_t layer, int32_t slot, int32_t head) {
  const float* page = kv.page_ptrs()[layer][slot / kBlock];
  return page + (static_cast<int64_t>(head) * kBlock + slot % kBlock) * kDim;
}

class RandomKvFillTest : public ::testing::Test {
 protected:
  kernels::cpu::CpuBackend backend_{1};
  std::unique_ptr<BlockPool> pool_ =
      *BlockPool::Create(backend_, {kHeads, kDim, kBlock, kernels::KvDtype::kF32}, 700);
};

TEST_F(RandomKvFillTest, HoldsWhatAPrefillUnderThePolicyLeaves) {
  const KvPageMath math{kLayers, kBlock};
  for (const KvPolicyConfig& policy :
       {Policy(KvPolicyKind::kFull, 0), Policy(KvPolicyKind::kRestKv, 64),
        Policy(KvPolicyKind::kPyramidKv, 64), Policy(KvPolicyKind::kStreamingLlm, 40)}) {
    for (int32_t n : {0, 1, 37, 1500}) {
      SequenceKv kv(*pool_, kLayers);
      ASSERT_TRUE(FillWithRandomKv(backend_, kv, policy, n, 1).ok());
      for (int32_t l = 0; l < kLayers; ++l) {
        EXPECT_EQ(kv.cached_len()[l], KeptTokensForLayer(policy, l, kLayers, n)) << n;
      }
      EXPECT_EQ(kv.num_pages(), math.PagesAfterPrefill(policy, n)) << n;
      kv.Release();
      EXPECT_EQ(pool_->num_free(), pool_->num_pages());
    }
  }
}

TEST_F(RandomKvFillTest, WritesUnitVarianceRowsSeededAndReusedPerChunk) {
  SequenceKv a(*pool_, kLayers), b(*pool_, kLayers), c(*pool_, kLayers);
  const KvPolicyConfig full = Policy(KvPolicyKind::kFull, 0);
  ASSERT_TRUE(FillWithRandomKv(backend_, a, full, 1100, 7).ok());
  ASSERT_TRUE(FillWithRandomKv(backend_, b, full, 1100, 7).ok());
  ASSERT_TRUE(FillWithRandomKv(backend_, c, full, 1100, 8).ok());
  double sum = 0, sq = 0;
  int64_t n = 0;
  for (int32_t slot = 0; slot < 1100; ++slot) {
    for (int32_t h = 0; h < kHeads; ++h) {
      const float* row = KRow(a, 1, slot, h);
      for (int32_t i = 0; i < kDim; ++i) {
        ASSERT_TRUE(std::isfinite(row[i]));
        sum += row[i];
        sq += row[i] * row[i];
        ++n;
      }
      EXPECT_EQ(std::memcmp(row, KRow(b, 1, slot, h), kDim * sizeof(float)), 0);
    }
  }
  EXPECT_NEAR(sum / n, 0.0, 0.1);
  EXPECT_NEAR(sq / n, 1.0, 0.1);
  // One chunk of 512 random rows, stored again past each multiple of it.
  EXPECT_EQ(std::memcmp(KRow(a, 0, 3, 1), KRow(a, 0, 3 + 512, 1), kDim * sizeof(float)), 0);
  EXPECT_NE(std::memcmp(KRow(a, 0, 3, 1), KRow(a, 0, 4, 1), kDim * sizeof(float)), 0);
  EXPECT_NE(std::memcmp(KRow(a, 0, 3, 1), KRow(c, 0, 3, 1), kDim * sizeof(float)), 0);
}

TEST_F(RandomKvFillTest, RoundsToThePageDtype) {
  auto pool = *BlockPool::Create(backend_, {kHeads, kDim, kBlock, kernels::KvDtype::kBf16}, 64);
  SequenceKv kv(*pool, kLayers);
  ASSERT_TRUE(FillWithRandomKv(backend_, kv, Policy(KvPolicyKind::kFull, 0), 200, 3).ok());
  EXPECT_EQ(kv.num_pages(), kLayers * 13);
}

TEST_F(RandomKvFillTest, ShortPoolIsResourceExhaustedAndKeepsNothing) {
  auto pool = *BlockPool::Create(backend_, {kHeads, kDim, kBlock, kernels::KvDtype::kF32}, 20);
  SequenceKv kv(*pool, kLayers);
  const absl::Status st = FillWithRandomKv(backend_, kv, Policy(KvPolicyKind::kFull, 0), 200, 1);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_EQ(kv.num_pages(), 0);
  EXPECT_EQ(pool->num_free(), 20);
  // The same footprint fits once evicting to 64 tokens a layer (4 pages).
  EXPECT_TRUE(FillWithRandomKv(backend_, kv, Policy(KvPolicyKind::kRestKv, 64), 200, 1).ok());
  EXPECT_EQ(kv.num_pages(), kLayers * 4);
}

TEST_F(RandomKvFillTest, RejectsANonEmptySequenceAndANegativeLength) {
  SequenceKv kv(*pool_, kLayers);
  EXPECT_EQ(FillWithRandomKv(backend_, kv, Policy(KvPolicyKind::kFull, 0), -1, 1).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(kv.Reserve(1));
  kv.Commit(1);
  EXPECT_EQ(FillWithRandomKv(backend_, kv, Policy(KvPolicyKind::kFull, 0), 10, 1).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace restkv::engine
