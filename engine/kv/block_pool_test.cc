#include "engine/kv/block_pool.h"

#include "engine/kv/sequence_kv.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::engine {
namespace {

TEST(BlockPoolTest, AllocatesInOrderAndReusesLastFreed) {
  kernels::cpu::CpuBackend backend(1);
  auto pool = *BlockPool::Create(backend, {1, 1, 16}, 4);
  EXPECT_EQ(pool->num_pages(), 4);
  EXPECT_EQ(*pool->Allocate(), 0);
  EXPECT_EQ(*pool->Allocate(), 1);
  EXPECT_EQ(*pool->Allocate(), 2);
  pool->Free(1);
  EXPECT_EQ(*pool->Allocate(), 1);
  EXPECT_EQ(*pool->Allocate(), 3);
  EXPECT_FALSE(pool->Allocate().has_value());
  EXPECT_EQ(pool->num_free(), 0);
  EXPECT_EQ(pool->high_water(), 4);
  EXPECT_EQ(pool->PageData(1) - pool->PageData(0), 32);  // K and V of 16 slots
}

TEST(BlockPoolTest, RejectsEmptyPool) {
  kernels::cpu::CpuBackend backend(1);
  EXPECT_EQ(BlockPool::Create(backend, {1, 1, 16}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BlockPoolDeathTest, DoubleFreeIsCaught) {
  kernels::cpu::CpuBackend backend(1);
  auto pool = *BlockPool::Create(backend, {1, 1, 16}, 2);
  const int32_t id = *pool->Allocate();
  pool->Free(id);
  EXPECT_DEATH(pool->Free(id), "freed twice");
}

TEST(SequenceKvTest, ReservesPerLayerAndReturnsEverything) {
  kernels::cpu::CpuBackend backend(1);
  auto pool = *BlockPool::Create(backend, {1, 1, 16}, 10);
  {
    SequenceKv kv(*pool, 3);
    EXPECT_EQ(kv.PagesNeeded(17), 6);  // 2 pages x 3 layers
    ASSERT_TRUE(kv.Reserve(17));
    kv.Commit(17);
    EXPECT_EQ(pool->num_free(), 4);
    EXPECT_EQ(kv.PagesNeeded(15), 0);  // fits in the second page
    EXPECT_EQ(kv.PagesNeeded(16), 3);
    // Too big: nothing is allocated.
    EXPECT_FALSE(kv.Reserve(40));
    EXPECT_EQ(pool->num_free(), 4);
    ASSERT_TRUE(kv.Reserve(16));
    EXPECT_EQ(pool->num_free(), 1);
    EXPECT_EQ(kv.page_ids(0), (std::vector<int32_t>{0, 1, 6}));
  }
  EXPECT_EQ(pool->num_free(), 10);
}

}  // namespace
}  // namespace restkv::engine
