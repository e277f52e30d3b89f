// Eviction during prefill over a cached prefix: a request with an evicting
// policy holds the cached blocks of its prompt's start read-only, computes
// only the rows after them, and must keep exactly the tokens (per layer and
// KV head) that the same prefill from position 0 keeps, with the same
// logits; the cached pages are never written, nothing of the compressed
// request is entered in the cache, and every page comes back.
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/kv/block_pool.h"
#include "engine/kv/kv_cache_manager.h"
#include "engine/kv/kv_layer_hook.h"
#include "engine/kv/layer_evictor.h"
#include "engine/model/llama_model.h"
#include "engine/model/model.h"
#include "engine/testing/synthetic_model_file.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::engine {
namespace {

class PrefixCacheEvictionTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    backend_ = std::make_unique<kernels::cpu::CpuBackend>(2);
    model_ = LoadGqaTestModel(*backend_, 2048, "prefix_eviction");
    ASSERT_NE(model_, nullptr);
  }

  std::unique_ptr<kernels::cpu::CpuBackend> backend_;
  std::unique_ptr<Model> model_;
};

using PrefixCacheEvictionStagingTest = PrefixCacheEvictionTest;

TEST_P(PrefixCacheEvictionTest, KeptSetsAndLogitsEqualThePrefillFromPositionZero) {
  const ModelConfig& c = model_->config();
  const int32_t L = c.num_layers;
  auto pool = *BlockPool::Create(*backend_, {c.num_kv_heads, c.head_dim, 16}, 1024);
  KvCacheManager kv(*pool, L);
  LayerEvictor evictor(c, model_->weights(), model_->backend());
  KvPolicyConfig policy;
  policy.kind = *ParseKvPolicy(GetParam());
  policy.budget = 64;
  const int32_t n = 300, shared = 200;
  std::vector<int32_t> prompt(n), donor(260);
  for (int32_t i = 0; i < n; ++i) prompt[i] = (i * 29 + 7) % 256;
  for (int32_t i = 0; i < 260; ++i) donor[i] = i < shared ? prompt[i] : (i * 11 + 3) % 256;

  // Reference: the whole prompt from position 0, no cache.
  EvictionReport want;
  want.record_kept = true;
  std::vector<float> want_logits;
  std::vector<int32_t> want_len;
  {
    SequenceKv seq(*pool, L);
    SequenceInput in{prompt, 0, seq.cached_len(), seq.page_ptrs(), LogitsMode::kLast};
    KvLayerHook hook(seq, policy, evictor, &want);
    in.hook = &hook;
    ASSERT_TRUE(model_->forward().Forward({&in, 1}, &want_logits).ok());
    want_len.assign(seq.cached_len().begin(), seq.cached_len().end());
  }
  ASSERT_EQ(pool->num_free(), pool->num_pages());

  // A full-cache request computes the donor prompt and enters its blocks.
  kv.SetTokens(1, &donor, true);
  ASSERT_EQ(kv.AcquirePrefix(1, 260), 0);
  {
    SequenceKv& seq = kv.Get(1);
    SequenceInput in{donor, 0, seq.cached_len(), seq.page_ptrs(), LogitsMode::kLast};
    KvLayerHook hook(seq);
    in.hook = &hook;
    std::vector<float> logits;
    ASSERT_TRUE(model_->forward().Forward({&in, 1}, &logits).ok());
  }
  kv.CacheFullBlocks(1);
  kv.Free(1);
  const int32_t blocks = pool->num_cached_blocks();
  ASSERT_EQ(blocks, 260 / 16);
  // The bytes of every cached page, to show they are never written.
  std::vector<std::vector<uint8_t>> before;
  const int64_t page_bytes = pool->shape().page_bytes();
  for (BlockId b = 1; b <= blocks; ++b) {
    for (int32_t p : pool->BlockPages(b)) {
      const auto* d = reinterpret_cast<const uint8_t*>(pool->PageData(p));
      before.emplace_back(d, d + page_bytes);
    }
  }

  // The evicting request: its prompt's first 12 blocks (192 tokens) match.
  kv.SetPolicy(2, policy);
  kv.SetTokens(2, &prompt, true);
  EXPECT_EQ(kv.CachedPrefixTokens(2, n), 192);
  EXPECT_EQ(kv.PrefillPeakPages(2, n), kv.math().PrefillPeakPages(policy, n) + 12 * L)
      << "held blocks nobody else holds cost their pages";
  ASSERT_EQ(kv.AcquirePrefix(2, n), 192);
  EXPECT_EQ(kv.PagesHeld(2), 12 * L);
  EXPECT_EQ(pool->BlockRefs(1), 1);
  EvictionReport got;
  got.record_kept = true;
  std::vector<float> got_logits;
  {
    SequenceKv& seq = kv.Get(2);
    const std::vector<int32_t> rest(prompt.begin() + 192, prompt.end());
    SequenceInput in{rest, 192, seq.cached_len(), seq.page_ptrs(), LogitsMode::kLast};
    KvLayerHook hook(seq, policy, evictor, &got);
    hook.set_prompt_chunk(192, n);
    in.hook = &hook;
    pool->ResetHighWater();
    ASSERT_TRUE(model_->forward().Forward({&in, 1}, &got_logits).ok());
    EXPECT_EQ(std::vector<int32_t>(seq.cached_len().begin(), seq.cached_len().end()), want_len);
    EXPECT_EQ(seq.held_prefix_pages(), 0) << "the references drop after the last layer";
    EXPECT_FALSE(seq.has_shared_blocks());
  }
  EXPECT_EQ(got.kept, want.kept);
  EXPECT_EQ(got.tokens_kept, want.tokens_kept);
  EXPECT_EQ(got_logits, want_logits);
  EXPECT_EQ(pool->BlockRefs(1), 0);
  kv.CacheFullBlocks(2);
  EXPECT_EQ(pool->num_cached_blocks(), blocks) << "compressed pages entered the cache";
  size_t i = 0;
  for (BlockId b = 1; b <= blocks; ++b) {
    for (int32_t p : pool->BlockPages(b)) {
      const auto* d = reinterpret_cast<const uint8_t*>(pool->PageData(p));
      EXPECT_EQ(std::memcmp(d, before[i++].data(), page_bytes), 0) << "block " << b << " written";
    }
  }
  kv.Free(2);
  EXPECT_EQ(pool->num_free(), pool->num_pages());
  EXPECT_EQ(pool->LruOrder().size(), static_cast<size_t>(blocks));
}

// An evicting prefill from position 0 stages its uncompressed full blocks:
// once published they hold, byte for byte, the pages a full-cache prefill
// of the same prompt enters; staging changes nothing the policy keeps; the
// next requests find the blocks, and every page comes back.
TEST_P(PrefixCacheEvictionStagingTest, AnEvictingPrefillLeavesItsUncompressedBlocksCached) {
  const ModelConfig& c = model_->config();
  const int32_t L = c.num_layers;
  const KvPageShape shape{c.num_kv_heads, c.head_dim, 16};
  auto ref_pool = *BlockPool::Create(*backend_, shape, 1024);
  auto pool = *BlockPool::Create(*backend_, shape, 1024);
  KvCacheManager ref_kv(*ref_pool, L), kv(*pool, L);
  LayerEvictor evictor(c, model_->weights(), model_->backend());
  KvPolicyConfig policy;
  policy.kind = *ParseKvPolicy(GetParam());
  policy.budget = 64;
  const int32_t n = 300;
  std::vector<int32_t> prompt(n);
  for (int32_t i = 0; i < n; ++i) prompt[i] = (i * 31 + 5) % 256;
  auto prefill = [&](KvCacheManager& m, scheduler::RequestId id, bool evicts,
                     EvictionReport* report) {
    SequenceKv& seq = m.Get(id);
    SequenceInput in{prompt, 0, seq.cached_len(), seq.page_ptrs(), LogitsMode::kLast};
    KvLayerHook hook = evicts ? KvLayerHook(seq, policy, evictor, report) : KvLayerHook(seq);
    hook.set_stager(m.StagerFor(id, n));
    in.hook = &hook;
    std::vector<float> logits;
    ASSERT_TRUE(model_->forward().Forward({&in, 1}, &logits).ok());
    m.CacheFullBlocks(id);
  };
  // Reference: the same prompt evicted without a cache, and its blocks as
  // a full-cache prefill enters them.
  EvictionReport want;
  want.record_kept = true;
  {
    KvCacheManager off(*ref_pool, L, /*prefix_caching=*/false);
    off.SetPolicy(9, policy);
    off.SetTokens(9, &prompt, true);
    prefill(off, 9, true, &want);
    off.Free(9);
  }
  ref_kv.SetTokens(1, &prompt, true);
  prefill(ref_kv, 1, false, nullptr);
  ref_kv.Free(1);
  ASSERT_EQ(ref_pool->num_cached_blocks(), n / 16);

  kv.SetPolicy(1, policy);
  kv.SetTokens(1, &prompt, true);
  ASSERT_EQ(kv.AcquirePrefix(1, n), 0);
  EvictionReport got;
  got.record_kept = true;
  prefill(kv, 1, true, &got);
  EXPECT_EQ(got.kept, want.kept);
  EXPECT_EQ(got.tokens_kept, want.tokens_kept);
  ASSERT_EQ(pool->num_cached_blocks(), n / 16);
  const int64_t page_bytes = shape.page_bytes();
  for (BlockId b = 1; b <= n / 16; ++b) {
    const std::vector<int32_t>& mine = pool->BlockPages(b);
    const std::vector<int32_t>& ref = ref_pool->BlockPages(b);
    ASSERT_EQ(mine.size(), ref.size());
    for (int32_t l = 0; l < L; ++l) {
      EXPECT_EQ(std::memcmp(pool->PageData(mine[l]), ref_pool->PageData(ref[l]), page_bytes), 0)
          << "block " << b << " layer " << l;
    }
  }
  kv.Free(1);
  EXPECT_EQ(pool->num_free(), pool->num_pages());
  // A full-cache request maps all but the last token's block; an evicting
  // one holds up to its scoring window (H2O looks nothing up).
  kv.SetTokens(2, &prompt, true);
  EXPECT_EQ(kv.AcquirePrefix(2, n), 18 * 16);
  kv.Free(2);
  kv.SetPolicy(3, policy);
  kv.SetTokens(3, &prompt, true);
  const int32_t window = NeedsH2oScores(policy) ? n : ScoringWindow(policy, n);
  EXPECT_EQ(kv.AcquirePrefix(3, n), (n - window) / 16 * 16);
  kv.Free(3);
  EXPECT_EQ(pool->num_free(), pool->num_pages());
}

INSTANTIATE_TEST_SUITE_P(EvictingPoliciesWithH2o, PrefixCacheEvictionStagingTest,
                         ::testing::Values("streamingllm", "h2o", "tova", "snapkv", "pyramidkv",
                                           "restkv"));

// H2O scores with every query, so it computes the whole prompt.
INSTANTIATE_TEST_SUITE_P(EvictingPolicies, PrefixCacheEvictionTest,
                         ::testing::Values("streamingllm", "tova", "snapkv", "pyramidkv",
                                           "restkv"));

TEST(PrefixCacheEvictionH2oTest, H2oLooksNothingUp) {
  kernels::cpu::CpuBackend backend(1);
  auto pool = *BlockPool::Create(backend, {1, 1, 4}, 40);
  KvCacheManager kv(*pool, 2);
  std::vector<int32_t> t(40);
  for (int32_t i = 0; i < 40; ++i) t[i] = i;
  kv.SetTokens(1, &t, true);
  {
    SequenceKv& seq = kv.Get(1);
    ASSERT_TRUE(seq.Reserve(40));
    seq.Commit(40);
  }
  kv.CacheFullBlocks(1);
  kv.Free(1);
  KvPolicyConfig h2o;
  h2o.kind = KvPolicyKind::kH2o;
  h2o.budget = 8;
  kv.SetPolicy(2, h2o);
  kv.SetTokens(2, &t, true);
  EXPECT_EQ(kv.CachedPrefixTokens(2, 40), 0);
  EXPECT_EQ(kv.AcquirePrefix(2, 40), 0);
}

}  // namespace
}  // namespace restkv::engine
