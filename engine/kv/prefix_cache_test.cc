// The prefix cache inside BlockPool and its use through SequenceKv and
// KvCacheManager: exact page ids, block ids, reference counts and LRU order
// after every step (a pool of 10 pages of 4 slots, 2 layers).
#include <memory>
#include <vector>

#include "engine/kv/block_pool.h"
#include "engine/kv/kv_cache_manager.h"
#include "engine/kv/prefix_hash.h"
#include "engine/kv/sequence_kv.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::engine {
namespace {

using Ids = std::vector<int32_t>;
using Blocks = std::vector<BlockId>;

constexpr int32_t kBlock = 4, kLayers = 2, kPages = 10;

uint64_t FirstBlockHash(const std::vector<int32_t>& tokens) {
  std::vector<uint64_t> hashes;
  ExtendBlockHashes(tokens, kBlock, 1, &hashes);
  return hashes[0];
}

class PrefixCacheTest : public ::testing::Test {
 protected:
  kernels::cpu::CpuBackend backend_{1};
  std::unique_ptr<BlockPool> pool_ = *BlockPool::Create(backend_, {1, 1, kBlock}, kPages);
};

TEST_F(PrefixCacheTest, InsertLookupReleaseAndLruReclaim) {
  BlockPool& pool = *pool_;
  const std::vector<int32_t> a = {1, 2, 3, 4}, b = {5, 6, 7, 8};
  // Step 1: two private pages become block 1 (one per layer), refs 1.
  const int32_t p0 = *pool.Allocate(), p1 = *pool.Allocate();
  ASSERT_EQ(Ids({p0, p1}), Ids({0, 1}));
  const BlockId b1 = pool.InsertBlock(kNoBlock, 11, a, Ids{p0, p1});
  EXPECT_EQ(b1, 1);
  EXPECT_EQ(pool.BlockRefs(b1), 1);
  EXPECT_EQ(pool.num_free(), 8);
  EXPECT_EQ(pool.LruOrder(), Blocks{});
  // Step 2: block 2 after it.
  const int32_t p2 = *pool.Allocate(), p3 = *pool.Allocate();
  const BlockId b2 = pool.InsertBlock(b1, 22, b, Ids{p2, p3});
  EXPECT_EQ(b2, 2);
  EXPECT_EQ(pool.Lookup(b1, 22, b), b2);
  EXPECT_EQ(pool.Lookup(kNoBlock, 22, b), kNoBlock) << "same tokens, other parent";
  EXPECT_EQ(pool.Lookup(b1, 23, b), kNoBlock) << "other hash";
  // An equal block is not entered twice: the caller keeps its pages.
  const int32_t p4 = *pool.Allocate(), p5 = *pool.Allocate();
  EXPECT_EQ(pool.InsertBlock(kNoBlock, 11, a, Ids{p4, p5}), kNoBlock);
  pool.Free(p5);
  pool.Free(p4);
  EXPECT_EQ(pool.num_free(), 6);
  // Step 3: released tail first, so the tail is reclaimed first.
  pool.ReleaseBlock(b2);
  EXPECT_EQ(pool.LruOrder(), Blocks({2}));
  EXPECT_EQ(pool.num_free(), 8) << "an unreferenced block's pages count as free";
  EXPECT_EQ(pool.num_cached_free_pages(), 2);
  pool.ReleaseBlock(b1);
  EXPECT_EQ(pool.LruOrder(), Blocks({2, 1}));
  EXPECT_EQ(pool.num_free(), 10);
  EXPECT_EQ(pool.num_cached_blocks(), 2);
  // Step 4: a hit on a block being freed takes it out of the LRU.
  EXPECT_EQ(pool.AcquireBlock(b1), Ids({0, 1}));
  EXPECT_EQ(pool.BlockRefs(b1), 1);
  EXPECT_EQ(pool.LruOrder(), Blocks({2}));
  EXPECT_EQ(pool.num_free(), 8);
  pool.ReleaseBlock(b1);
  EXPECT_EQ(pool.LruOrder(), Blocks({2, 1}));
  // Step 5: the free list (pages 4..9, 5 on top after the frees) goes first...
  Ids got;
  for (int i = 0; i < 6; ++i) got.push_back(*pool.Allocate());
  EXPECT_EQ(got, Ids({4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(pool.num_cached_blocks(), 2);
  // ... then the least recently released block (2) is reclaimed, layer 0 first.
  EXPECT_EQ(*pool.Allocate(), 2);
  EXPECT_FALSE(pool.IsCached(b2));
  EXPECT_EQ(pool.LruOrder(), Blocks({1}));
  EXPECT_EQ(pool.Lookup(b1, 22, b), kNoBlock);
  EXPECT_EQ(*pool.Allocate(), 3);
  EXPECT_EQ(*pool.Allocate(), 0);
  EXPECT_EQ(pool.LruOrder(), Blocks{});
  EXPECT_EQ(*pool.Allocate(), 1);
  EXPECT_FALSE(pool.Allocate().has_value());
  EXPECT_EQ(pool.num_cached_blocks(), 0);
  EXPECT_EQ(pool.high_water(), kPages);
}

TEST_F(PrefixCacheTest, HashCollisionsAreToldApartByTokens) {
  BlockPool& pool = *pool_;
  const std::vector<int32_t> a = {1, 2, 3, 4}, b = {9, 9, 9, 9};
  const int32_t p0 = *pool.Allocate(), p1 = *pool.Allocate();
  const BlockId b1 = pool.InsertBlock(kNoBlock, 7, a, Ids{p0, p1});
  // Same hash, other tokens: a miss, and both can be cached side by side.
  EXPECT_EQ(pool.Lookup(kNoBlock, 7, b), kNoBlock);
  const int32_t p2 = *pool.Allocate(), p3 = *pool.Allocate();
  const BlockId b2 = pool.InsertBlock(kNoBlock, 7, b, Ids{p2, p3});
  EXPECT_EQ(b2, 2);
  EXPECT_EQ(pool.Lookup(kNoBlock, 7, a), b1);
  EXPECT_EQ(pool.Lookup(kNoBlock, 7, b), b2);
  EXPECT_EQ(pool.AcquireBlock(b2), Ids({2, 3}));
  EXPECT_EQ(pool.BlockRefs(b2), 2);
  // Reclaiming one leaves the other findable.
  pool.ReleaseBlock(b2);
  pool.ReleaseBlock(b2);
  pool.ReleaseBlock(b1);
  EXPECT_EQ(pool.LruOrder(), Blocks({2, 1}));
  for (int i = 0; i < 7; ++i) pool.Allocate();
  EXPECT_FALSE(pool.IsCached(b2));
  EXPECT_EQ(pool.Lookup(kNoBlock, 7, a), b1);
}

TEST_F(PrefixCacheTest, FreeingACachedPageIsCaught) {
  BlockPool& pool = *pool_;
  const int32_t p0 = *pool.Allocate(), p1 = *pool.Allocate();
  pool.InsertBlock(kNoBlock, 1, Ids{1, 2, 3, 4}, Ids{p0, p1});
  EXPECT_DEATH(pool.Free(p0), "belongs to a cached block");
}

// Staged blocks: copies an evicting prefill makes layer by layer, findable
// only once published, free pages all along, reclaimable at any time.
TEST_F(PrefixCacheTest, StagedBlocksArePublishedOrReclaimed) {
  BlockPool& pool = *pool_;
  const std::vector<int32_t> a = {1, 2, 3, 4}, b = {5, 6, 7, 8};
  // A sequence's own pages of one block (layer 0, layer 1), with data.
  const int32_t s0 = *pool.Allocate(), s1 = *pool.Allocate();
  ASSERT_EQ(Ids({s0, s1}), Ids({0, 1}));
  pool.PageData(s0)[0] = 10.0f;
  pool.PageData(s1)[0] = 11.0f;
  // Step 1: layer 0 staged: a copy in page 2, not findable, counted as free.
  const BlockId b1 = pool.StageBlock(11, a, s0);
  EXPECT_EQ(b1, 1);
  EXPECT_EQ(pool.BlockPages(b1), Ids({2}));
  EXPECT_EQ(pool.PageData(2)[0], 10.0f);
  EXPECT_EQ(pool.Lookup(kNoBlock, 11, a), kNoBlock) << "staged blocks are not findable";
  EXPECT_EQ(pool.num_free(), 8);
  EXPECT_EQ(pool.num_free_list(), 7);
  EXPECT_EQ(pool.LruOrder(), Blocks({1}));
  // Step 2: layer 1, then published: findable, unreferenced, in the LRU.
  ASSERT_TRUE(pool.StagePage(b1, s1));
  EXPECT_EQ(pool.BlockPages(b1), Ids({2, 3}));
  EXPECT_EQ(pool.PageData(3)[0], 11.0f);
  EXPECT_EQ(pool.PublishBlock(b1, kNoBlock), b1);
  EXPECT_EQ(pool.Lookup(kNoBlock, 11, a), b1);
  EXPECT_EQ(pool.BlockRefs(b1), 0);
  EXPECT_EQ(pool.num_free(), 8);
  EXPECT_EQ(pool.num_cached_free_pages(), 2);
  // Step 3: a second block after it; staging stops when the free list is
  // empty (it never reclaims), and allocation reclaims the LRU front.
  const BlockId b2 = pool.StageBlock(22, b, s0);
  EXPECT_EQ(b2, 2);
  EXPECT_EQ(pool.BlockPages(b2), Ids({4}));
  EXPECT_EQ(pool.LruOrder(), Blocks({1, 2}));
  Ids taken;
  for (int i = 0; i < 5; ++i) taken.push_back(*pool.Allocate());
  EXPECT_EQ(taken, Ids({5, 6, 7, 8, 9}));
  EXPECT_EQ(pool.num_free_list(), 0);
  EXPECT_FALSE(pool.StagePage(b2, s1)) << "staging takes only free-list pages";
  EXPECT_EQ(pool.StageBlock(33, b, s0), kNoBlock);
  EXPECT_EQ(pool.num_free(), 3) << "block 1's two pages and block 2's one";
  EXPECT_EQ(*pool.Allocate(), 2) << "block 1 reclaimed, layer 0 first";
  EXPECT_FALSE(pool.IsCached(b1));
  // Its child cannot be published without it, and is dropped.
  EXPECT_EQ(pool.PublishBlock(b2, b1), kNoBlock);
  EXPECT_FALSE(pool.IsCached(b2));
  EXPECT_EQ(pool.num_free_list(), 2) << "pages 3 and 4 back";
  pool.DropStaged(b2);  // already gone: nothing happens
  EXPECT_EQ(pool.num_cached_blocks(), 0);
  EXPECT_EQ(pool.LruOrder(), Blocks{});
}

TEST_F(PrefixCacheTest, PublishingABlockCachedMeanwhileKeepsTheCachedOne) {
  BlockPool& pool = *pool_;
  const std::vector<int32_t> a = {1, 2, 3, 4};
  const int32_t s0 = *pool.Allocate(), s1 = *pool.Allocate();
  const BlockId staged = pool.StageBlock(11, a, s0);
  ASSERT_TRUE(pool.StagePage(staged, s1));
  // Another request enters an equal block first.
  const int32_t p0 = *pool.Allocate(), p1 = *pool.Allocate();
  const BlockId entered = pool.InsertBlock(kNoBlock, 11, a, Ids{p0, p1});
  ASSERT_EQ(entered, 2);
  EXPECT_EQ(pool.PublishBlock(staged, kNoBlock), entered);
  EXPECT_FALSE(pool.IsCached(staged)) << "the copy is dropped";
  EXPECT_EQ(pool.num_cached_blocks(), 1);
  EXPECT_EQ(pool.num_free(), kPages - 4);
}

// Through the manager: a request's full blocks are cached after its
// prefill; the next request with the same prefix maps them and shares them.
class ManagerPrefixTest : public PrefixCacheTest {
 protected:
  KvCacheManager kv_{*pool_, kLayers};
  // What the forward pass does for a prefill of rows [from, n) on all layers.
  void Prefill(scheduler::RequestId id, int32_t from, int32_t n) {
    SequenceKv& seq = kv_.Get(id);
    ASSERT_TRUE(seq.Reserve(n - from));
    seq.Commit(n - from);
  }
};

TEST_F(ManagerPrefixTest, SecondRequestSharesTheFullBlocksAndPartialBlocksAreNotCached) {
  const std::vector<int32_t> t1 = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};  // 2 full blocks + 2
  std::vector<int32_t> t2 = {1, 2, 3, 4, 5, 6, 7, 8, 20};           // shares both blocks
  kv_.SetTokens(1, &t1, true);
  kv_.SetTokens(2, &t2, true);
  // Request 1: nothing cached yet.
  EXPECT_EQ(kv_.PrefillPeakPages(1, 10), kLayers * 3);
  EXPECT_EQ(kv_.AcquirePrefix(1, 10), 0);
  Prefill(1, 0, 10);
  EXPECT_EQ(kv_.Get(1).page_ids(0), Ids({0, 1, 2}));
  EXPECT_EQ(kv_.Get(1).page_ids(1), Ids({3, 4, 5}));
  kv_.CacheFullBlocks(1);
  EXPECT_EQ(pool_->num_cached_blocks(), 2) << "the partial third block is not cached";
  EXPECT_EQ(kv_.Get(1).cached_block(0), 1);
  EXPECT_EQ(kv_.Get(1).cached_block(1), 2);
  EXPECT_EQ(kv_.Get(1).cached_block(2), kNoBlock);
  // Request 2, before admission: both blocks are held by request 1, so
  // sharing them is free: only its last block costs pages.
  EXPECT_EQ(kv_.CachedPrefixTokens(2, 9), 8);
  EXPECT_EQ(kv_.PrefillPeakPages(2, 9), kLayers * 1);
  EXPECT_EQ(kv_.AcquirePrefix(2, 9), 8);
  EXPECT_EQ(kv_.Get(2).page_ids(0), Ids({0, 1}));
  EXPECT_EQ(kv_.Get(2).page_ids(1), Ids({3, 4}));
  EXPECT_EQ(kv_.Get(2).cached_len()[0], 8);
  EXPECT_EQ(pool_->BlockRefs(1), 2);
  EXPECT_EQ(pool_->BlockRefs(2), 2);
  Prefill(2, 8, 9);
  EXPECT_EQ(kv_.Get(2).page_ids(0), Ids({0, 1, 6}));
  EXPECT_EQ(kv_.Get(2).page_ids(1), Ids({3, 4, 7}));
  EXPECT_EQ(pool_->num_free(), 2);
  EXPECT_EQ(kv_.prefix_counters().query_tokens, 19);
  EXPECT_EQ(kv_.prefix_counters().hit_tokens, 8);
  // Request 1 finishes: its own page goes to the free list, the shared
  // blocks stay referenced by request 2.
  kv_.CacheFullBlocks(1);
  kv_.Free(1);
  EXPECT_EQ(pool_->BlockRefs(1), 1);
  EXPECT_EQ(pool_->BlockRefs(2), 1);
  EXPECT_EQ(pool_->LruOrder(), Blocks{});
  EXPECT_EQ(pool_->num_free(), 4);
  // Request 2 is preempted: its blocks go to the LRU tail first.
  kv_.Release(2);
  EXPECT_EQ(pool_->LruOrder(), Blocks({2, 1}));
  EXPECT_EQ(pool_->num_free(), kPages);
  // Its recompute maps them again (a hit on blocks being freed).
  EXPECT_EQ(kv_.PrefillPeakPages(2, 9), kLayers * 3) << "unreferenced: they cost their pages";
  EXPECT_EQ(kv_.AcquirePrefix(2, 9), 8);
  EXPECT_EQ(pool_->LruOrder(), Blocks{});
  EXPECT_EQ(pool_->num_free(), kPages - 4);
  kv_.Free(2);
  EXPECT_EQ(pool_->LruOrder(), Blocks({2, 1}));
  EXPECT_EQ(pool_->num_free(), kPages);
}

TEST_F(ManagerPrefixTest, TheLastTokenIsAlwaysComputed) {
  const std::vector<int32_t> t = {1, 2, 3, 4, 5, 6, 7, 8};  // exactly 2 blocks
  kv_.SetTokens(1, &t, true);
  kv_.SetTokens(2, &t, true);
  kv_.AcquirePrefix(1, 8);
  Prefill(1, 0, 8);
  kv_.CacheFullBlocks(1);
  EXPECT_EQ(pool_->num_cached_blocks(), 2);
  EXPECT_EQ(kv_.AcquirePrefix(2, 8), 4) << "the second block holds the last token: computed";
}

TEST_F(ManagerPrefixTest, EvictingPoliciesHoldReadOnlyAndNeverInsert) {
  const std::vector<int32_t> t = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
  KvPolicyConfig snap;
  snap.kind = KvPolicyKind::kSnapKv;
  snap.budget = 6;
  snap.window = 4;
  kv_.SetTokens(1, &t, true);
  kv_.SetTokens(2, &t, true);
  kv_.SetPolicy(2, snap);
  Prefill(1, 0, 13);
  kv_.CacheFullBlocks(1);
  ASSERT_EQ(pool_->num_cached_blocks(), 3);
  kv_.Free(1);
  EXPECT_EQ(pool_->LruOrder(), Blocks({3, 2, 1}));
  ASSERT_EQ(ScoringWindow(snap, 13), 4);
  // The window's 4 queries are computed: (13 - 4) / 4 = 2 blocks, held, not mapped.
  EXPECT_EQ(kv_.CachedPrefixTokens(2, 13), 8);
  EXPECT_EQ(kv_.PrefillPeakPages(2, 13), kv_.math().PrefillPeakPages(snap, 13) + kLayers * 2)
      << "unreferenced held blocks cost their pages";
  EXPECT_EQ(kv_.AcquirePrefix(2, 13), 8);
  SequenceKv& seq = kv_.Get(2);
  EXPECT_EQ(seq.held_prefix_pages(), kLayers * 2);
  EXPECT_EQ(seq.num_pages(), 0) << "nothing is mapped";
  EXPECT_EQ(kv_.PagesHeld(2), kLayers * 2);
  EXPECT_EQ(pool_->LruOrder(), Blocks({3}));
  EXPECT_EQ(pool_->BlockRefs(1), 1);
  // Each layer starts from its own copy; the references drop after the last.
  ASSERT_TRUE(seq.CopyPrefixIntoLayer(0));
  EXPECT_EQ(seq.cached_len()[0], 8);
  EXPECT_EQ(seq.page_ids(0), Ids({7, 3})) << "fresh pages (LIFO), not the cached 0 and 1";
  EXPECT_EQ(pool_->BlockRefs(1), 1);
  ASSERT_TRUE(seq.CopyPrefixIntoLayer(1));
  EXPECT_EQ(seq.page_ids(1), Ids({8, 9}));
  EXPECT_EQ(seq.held_prefix_pages(), 0);
  EXPECT_EQ(pool_->LruOrder(), Blocks({3, 2, 1}));
  EXPECT_FALSE(seq.has_shared_blocks());
  kv_.CacheFullBlocks(2);
  EXPECT_EQ(pool_->num_cached_blocks(), 3) << "a compressing request's pages are never cached";
  kv_.Free(2);
  EXPECT_EQ(pool_->num_free(), kPages);

  KvCacheManager off(*pool_, kLayers, /*prefix_caching=*/false);
  off.SetTokens(3, &t, true);
  EXPECT_EQ(off.AcquirePrefix(3, 13), 0);
  EXPECT_EQ(off.PrefillPeakPages(3, 13), kLayers * 4);
}

// An evicting request stages its uncompressed full blocks before each
// layer is compacted; they are published after the last layer and a
// full-cache request then maps them. A preempted prefill's staging is
// dropped.
TEST_F(ManagerPrefixTest, EvictingPrefillsStageTheirUncompressedBlocks) {
  const std::vector<int32_t> t = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};  // 2 full blocks + 2
  KvPolicyConfig snap;
  snap.kind = KvPolicyKind::kSnapKv;
  snap.budget = 4;
  snap.window = 2;
  kv_.SetTokens(1, &t, true);
  kv_.SetPolicy(1, snap);
  ASSERT_EQ(kv_.AcquirePrefix(1, 10), 0);
  PrefixStager* stager = kv_.StagerFor(1, 10);
  ASSERT_NE(stager, nullptr);
  EXPECT_EQ(kv_.StagerFor(1, 10), stager) << "one stager a prefill";
  SequenceKv& seq = kv_.Get(1);
  // Layer by layer, as the forward pass: reserve, commit, stage, evict.
  for (int32_t l = 0; l < kLayers; ++l) {
    ASSERT_TRUE(seq.ReserveLayers(l, l + 1, 10));
    seq.CommitLayers(l, l + 1, 10);
    for (int32_t i = 0; i < 3; ++i) pool_->PageData(seq.page_ids(l)[i])[0] = 100.0f * l + i;
    stager->StageLayer(l, seq);
    seq.TruncateLayer(l, 4);
  }
  // Layer 0 took pages 0-2 and staged into 3, 4; its truncation gave back
  // 2 and 1, which layer 1 took with 5, staging into 6, 7.
  EXPECT_EQ(stager->num_staged(), 2);
  EXPECT_EQ(pool_->num_cached_blocks(), 2);
  EXPECT_EQ(pool_->Lookup(kNoBlock, FirstBlockHash(t), Ids({1, 2, 3, 4})), kNoBlock)
      << "not before the prefill ends";
  kv_.CacheFullBlocks(1);
  EXPECT_EQ(pool_->num_cached_blocks(), 2) << "published; its own compressed pages not entered";
  const BlockId b1 = pool_->Lookup(kNoBlock, FirstBlockHash(t), Ids({1, 2, 3, 4}));
  ASSERT_NE(b1, kNoBlock);
  EXPECT_EQ(pool_->BlockPages(b1), Ids({3, 6}));
  EXPECT_EQ(pool_->PageData(3)[0], 0.0f);
  EXPECT_EQ(pool_->PageData(6)[0], 100.0f);
  const BlockId b2 = 2;
  EXPECT_EQ(pool_->BlockPages(b2), Ids({4, 7}));
  EXPECT_EQ(pool_->PageData(4)[0], 1.0f);
  EXPECT_EQ(pool_->PageData(7)[0], 101.0f);
  EXPECT_EQ(pool_->LruOrder(), Blocks({2, 1})) << "the tail is reclaimed first";
  // A full-cache request with the same prompt maps both blocks.
  kv_.SetTokens(2, &t, true);
  EXPECT_EQ(kv_.AcquirePrefix(2, 10), 8);
  EXPECT_EQ(kv_.Get(2).page_ids(1), Ids({6, 7}));
  kv_.Free(2);
  kv_.Free(1);
  EXPECT_EQ(pool_->num_free(), kPages);
  // Another evicting prefill of the prompt stages nothing: both are cached.
  kv_.SetTokens(4, &t, true);
  kv_.SetPolicy(4, snap);
  EXPECT_EQ(kv_.StagerFor(4, 10)->num_staged(), 0);
  kv_.Free(4);

  // A prefill preempted half way: what it staged is dropped.
  const std::vector<int32_t> u = {9, 9, 9, 9, 8, 8, 8, 8, 7};
  kv_.SetTokens(3, &u, true);
  kv_.SetPolicy(3, snap);
  ASSERT_EQ(kv_.AcquirePrefix(3, 9), 0);
  SequenceKv& s3 = kv_.Get(3);
  ASSERT_TRUE(s3.ReserveLayers(0, 1, 9));
  s3.CommitLayers(0, 1, 9);
  kv_.StagerFor(3, 9)->StageLayer(0, s3);
  EXPECT_EQ(pool_->num_cached_blocks(), 4);
  kv_.Release(3);
  EXPECT_EQ(pool_->num_cached_blocks(), 2);
  EXPECT_EQ(pool_->num_free(), kPages);
  kv_.Free(3);
}

TEST(PrefixHashTest, ChainsThroughEveryEarlierToken) {
  const std::vector<int32_t> a = {1, 2, 3, 4, 5, 6, 7, 8}, b = {0, 2, 3, 4, 5, 6, 7, 8};
  std::vector<uint64_t> ha, hb;
  ExtendBlockHashes(a, 4, 2, &ha);
  ExtendBlockHashes(b, 4, 2, &hb);
  ASSERT_EQ(ha.size(), 2u);
  EXPECT_NE(ha[0], hb[0]);
  EXPECT_NE(ha[1], hb[1]) << "equal second blocks after different first blocks";
  std::vector<uint64_t> again = {ha[0]};
  ExtendBlockHashes(a, 4, 2, &again);
  EXPECT_EQ(again, ha);
}

}  // namespace
}  // namespace restkv::engine
