// The scheduler::KvAllocator contract, run over both implementations: the
// scheduler tests' FakeKvAllocator and the engine's KvCacheManager. A case
// that passes on one and fails on the other means the scheduler is tested
// against a cache that behaves unlike the real one.
#include <map>
#include <memory>
#include <vector>

#include "engine/kv/block_pool.h"
#include "engine/kv/kv_cache_manager.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "scheduler/testing/fake_kv_allocator.h"

namespace restkv::engine {
namespace {

using scheduler::KvAllocator;
using scheduler::RequestId;

constexpr int32_t kPages = 20, kLayers = 2, kBlock = 4;

// Each implementation, and what "running a prefill slice" means for it.
struct Fake {
  scheduler::FakeKvAllocator kv{kPages, kLayers, kBlock};
  KvAllocator& allocator() { return kv; }
  bool RunPrefill(RequestId id, int32_t n, int32_t l0, int32_t l1) {
    return kv.RunPrefill(id, n, l0, l1);
  }
  void RunDecode(RequestId, int32_t) {}  // the fake counts tokens at allocation
  // Makes the first `tokens` (whole blocks) of request id's prompt cached,
  // in unreferenced blocks.
  void CachePrefix(RequestId id, int32_t tokens) { kv.set_cached_prefix(id, tokens); }
  bool RunPrefillAfter(RequestId id, int32_t n, int32_t prefix) {
    return kv.RunPrefill(id, n, 0, kLayers, prefix);
  }
};

struct Manager {
  kernels::cpu::CpuBackend backend{1};
  std::unique_ptr<BlockPool> pool = *BlockPool::Create(backend, {1, 1, kBlock}, kPages);
  KvCacheManager kv{*pool, kLayers};
  KvAllocator& allocator() { return kv; }
  // What the forward pass's layer hook does for each layer of the slice.
  bool RunPrefill(RequestId id, int32_t n, int32_t l0, int32_t l1) {
    SequenceKv& seq = kv.Get(id);
    if (!seq.ReserveLayers(l0, l1, n)) return false;
    seq.CommitLayers(l0, l1, n);
    return true;
  }
  // The decode step fills the slots AllocateDecode reserved.
  void RunDecode(RequestId id, int32_t n) { kv.Get(id).Commit(n); }
  // A donor request computes the prefix, enters it in the cache and leaves.
  std::map<RequestId, std::vector<int32_t>> tokens;
  void CachePrefix(RequestId id, int32_t n) {
    tokens[id] = std::vector<int32_t>(64);
    for (size_t i = 0; i < 64; ++i) tokens[id][i] = static_cast<int32_t>(i);
    tokens[-id] = std::vector<int32_t>(tokens[id].begin(), tokens[id].begin() + n);
    kv.SetTokens(id, &tokens[id], true);
    kv.SetTokens(-id, &tokens[-id], true);
    ASSERT_TRUE(RunPrefill(-id, n, 0, kLayers));
    kv.CacheFullBlocks(-id);
    kv.Free(-id);
  }
  bool RunPrefillAfter(RequestId id, int32_t n, int32_t prefix) {
    SequenceKv& seq = kv.Get(id);
    if (!seq.Reserve(n - prefix)) return false;
    seq.Commit(n - prefix);
    return true;
  }
};

template <typename T>
class KvAllocatorContractTest : public ::testing::Test {
 protected:
  T impl_;
  KvAllocator& kv() { return impl_.allocator(); }
};

using Implementations = ::testing::Types<Fake, Manager>;
TYPED_TEST_SUITE(KvAllocatorContractTest, Implementations);

TYPED_TEST(KvAllocatorContractTest, EmptyCacheAnswersFromTokenCounts) {
  KvAllocator& kv = this->kv();
  EXPECT_EQ(kv.NumFreePages(), kPages);
  EXPECT_EQ(kv.PagesHeld(7), 0);
  EXPECT_EQ(kv.PrefillPeakPages(7, 9), kLayers * 3);  // ceil(9 / 4) pages a layer
  EXPECT_EQ(kv.DecodePages(7, 4), kLayers * 1);
}

TYPED_TEST(KvAllocatorContractTest, CoversPrefillChecksAndTakesNothing) {
  KvAllocator& kv = this->kv();
  EXPECT_TRUE(kv.CoversPrefill(1, 40, 0, 1));  // 2 x 10 pages: exactly the pool
  EXPECT_FALSE(kv.CoversPrefill(1, 41, 0, 1)) << "the whole peak is promised, not one slice";
  EXPECT_EQ(kv.NumFreePages(), kPages);
  EXPECT_EQ(kv.PagesHeld(1), 0);
}

TYPED_TEST(KvAllocatorContractTest, SlicesTakePagesAndTheRestStaysCovered) {
  KvAllocator& kv = this->kv();
  ASSERT_TRUE(kv.CoversPrefill(1, 30, 0, 1));  // 8 pages a layer
  ASSERT_TRUE(this->impl_.RunPrefill(1, 30, 0, 1));
  EXPECT_EQ(kv.PagesHeld(1), 8);
  EXPECT_EQ(kv.NumFreePages(), kPages - 8);
  EXPECT_TRUE(kv.CoversPrefill(1, 30, 1, 2)) << "8 more of the 12 free";
  // Only free pages are compared: promises to other requests are the
  // scheduler's to subtract (Scheduler::ReservedPages).
  EXPECT_TRUE(kv.CoversPrefill(2, 20, 0, 1));   // 10 of the 12 free
  EXPECT_FALSE(kv.CoversPrefill(2, 28, 0, 1));  // 14
  ASSERT_TRUE(this->impl_.RunPrefill(1, 30, 1, 2));
  EXPECT_EQ(kv.PagesHeld(1), 16);
  EXPECT_EQ(kv.NumFreePages(), kPages - 16);
}

TYPED_TEST(KvAllocatorContractTest, DecodeTakesAPageALayerAtEachBoundary) {
  KvAllocator& kv = this->kv();
  ASSERT_TRUE(this->impl_.RunPrefill(1, 7, 0, kLayers));  // 2 pages a layer, 1 slot left
  EXPECT_EQ(kv.DecodePages(1, 1), 0);
  ASSERT_TRUE(kv.AllocateDecode(1, 1));
  this->impl_.RunDecode(1, 1);
  EXPECT_EQ(kv.PagesHeld(1), 4);
  EXPECT_EQ(kv.DecodePages(1, 1), kLayers);
  ASSERT_TRUE(kv.AllocateDecode(1, 1));
  this->impl_.RunDecode(1, 1);
  EXPECT_EQ(kv.PagesHeld(1), 6);
  EXPECT_EQ(kv.NumFreePages(), kPages - 6);
}

TYPED_TEST(KvAllocatorContractTest, DecodeShortOfPagesTakesNothing) {
  KvAllocator& kv = this->kv();
  ASSERT_TRUE(this->impl_.RunPrefill(1, 40, 0, kLayers));  // the whole pool
  EXPECT_EQ(kv.NumFreePages(), 0);
  EXPECT_FALSE(kv.AllocateDecode(1, 1));
  EXPECT_EQ(kv.PagesHeld(1), kPages);
  EXPECT_FALSE(this->impl_.RunPrefill(2, 1, 0, 1));
  EXPECT_EQ(kv.PagesHeld(2), 0);
}

TYPED_TEST(KvAllocatorContractTest, CachedPrefixIsMappedAtAdmissionAndCountsAsHeld) {
  KvAllocator& kv = this->kv();
  this->impl_.CachePrefix(5, 8);  // two blocks, unreferenced
  EXPECT_EQ(kv.NumFreePages(), kPages) << "unreferenced cached pages count as free";
  EXPECT_EQ(kv.CachedPrefixTokens(5, 10), 8);
  EXPECT_EQ(kv.CachedPrefixTokens(5, 8), 4) << "the last token is always computed";
  EXPECT_EQ(kv.PrefillPeakPages(5, 10), kLayers * 3);
  EXPECT_EQ(kv.AcquirePrefix(5, 10), 8);
  EXPECT_EQ(kv.PagesHeld(5), kLayers * 2);
  EXPECT_EQ(kv.NumFreePages(), kPages - kLayers * 2);
  EXPECT_EQ(kv.CachedPrefixTokens(5, 10), 0) << "it holds pages now";
  EXPECT_TRUE(kv.CoversPrefill(5, 10, 0, kLayers));
  ASSERT_TRUE(this->impl_.RunPrefillAfter(5, 10, 8));
  EXPECT_EQ(kv.PagesHeld(5), kLayers * 3);
  kv.Free(5);
  EXPECT_EQ(kv.NumFreePages(), kPages);
  EXPECT_EQ(kv.PagesHeld(5), 0);
}

TYPED_TEST(KvAllocatorContractTest, ReleaseAndFreeReturnEveryPage) {
  KvAllocator& kv = this->kv();
  ASSERT_TRUE(this->impl_.RunPrefill(1, 12, 0, kLayers));
  ASSERT_TRUE(this->impl_.RunPrefill(2, 5, 0, kLayers));
  ASSERT_TRUE(kv.AllocateDecode(2, 4));
  this->impl_.RunDecode(2, 4);
  const int32_t peak1 = kv.PrefillPeakPages(1, 12);
  kv.Release(1);  // preemption
  EXPECT_EQ(kv.PagesHeld(1), 0);
  EXPECT_EQ(kv.PrefillPeakPages(1, 12), peak1) << "a recompute is admitted at the same cost";
  EXPECT_EQ(kv.NumFreePages(), kPages - kv.PagesHeld(2));
  kv.Free(2);
  kv.Free(1);
  EXPECT_EQ(kv.NumFreePages(), kPages);
  EXPECT_EQ(kv.PagesHeld(2), 0);
}

// What only the real cache can do: the policy survives preemption, so the
// recompute's admission cost is the post-eviction footprint, not the full one.
TEST(KvCacheManagerTest, ReleaseKeepsThePolicyAndFreeForgetsIt) {
  kernels::cpu::CpuBackend backend(1);
  auto pool = *BlockPool::Create(backend, {1, 1, kBlock}, 400);
  KvCacheManager kv(*pool, /*num_layers=*/8);
  KvPolicyConfig policy;
  policy.kind = KvPolicyKind::kStreamingLlm;
  policy.budget = 16;
  kv.SetPolicy(1, policy);
  const int32_t full = kv.PrefillPeakPages(2, 200);
  const int32_t evicting = kv.PrefillPeakPages(1, 200);
  EXPECT_LT(evicting, full);
  kv.Release(1);
  EXPECT_EQ(kv.PrefillPeakPages(1, 200), evicting);
  kv.Free(1);
  EXPECT_EQ(kv.PrefillPeakPages(1, 200), full);
}

}  // namespace
}  // namespace restkv::engine
