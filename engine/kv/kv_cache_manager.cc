#include "engine/kv/kv_cache_manager.h"

#include <algorithm>

#include "common/check.h"
#include "engine/kv/prefix_hash.h"

namespace restkv::engine {

KvCacheManager::KvCacheManager(BlockPool& pool, int32_t num_layers, bool prefix_caching)
    : pool_(pool),
      num_layers_(num_layers),
      math_{num_layers, pool.shape().block_size},
      prefix_caching_(prefix_caching) {}

void KvCacheManager::SetPolicy(scheduler::RequestId id, const KvPolicyConfig& policy) {
  policies_[id] = policy;
}

void KvCacheManager::SetTokens(scheduler::RequestId id, const std::vector<int32_t>* tokens,
                               bool lookup) {
  Prefix& p = prefixes_[id];
  p.tokens = tokens;
  p.lookup = lookup;
  p.hashes.clear();
}

KvPolicyConfig KvCacheManager::PolicyOf(scheduler::RequestId id) const {
  auto it = policies_.find(id);
  return it == policies_.end() ? KvPolicyConfig{} : it->second;
}

namespace {

bool Evicting(const KvPolicyConfig& policy) {
  return policy.kind != KvPolicyKind::kFull && policy.budget > 0;
}

}  // namespace

KvCacheManager::Prefix* KvCacheManager::Find(scheduler::RequestId id) const {
  if (!prefix_caching_) return nullptr;
  auto it = prefixes_.find(id);
  if (it == prefixes_.end() || it->second.tokens == nullptr) return nullptr;
  return &it->second;
}

KvCacheManager::Reuse KvCacheManager::ReuseOf(scheduler::RequestId id) const {
  const Prefix* p = Find(id);
  if (p == nullptr || !p->lookup) return Reuse::kNone;
  const KvPolicyConfig policy = PolicyOf(id);
  if (!Evicting(policy)) return Reuse::kMap;
  return NeedsH2oScores(policy) ? Reuse::kNone : Reuse::kCopy;
}

std::vector<BlockId> KvCacheManager::CachedChain(Prefix& p, int32_t max_blocks) const {
  const int32_t bs = math_.block_size;
  ExtendBlockHashes(*p.tokens, bs, max_blocks, &p.hashes);
  std::vector<BlockId> blocks;
  BlockId parent = kNoBlock;
  for (int32_t i = 0; i < max_blocks; ++i) {
    const BlockId b =
        pool_.Lookup(parent, p.hashes[i], absl::MakeConstSpan(p.tokens->data() + i * bs, bs));
    if (b == kNoBlock) break;
    blocks.push_back(b);
    parent = b;
  }
  return blocks;
}

std::vector<BlockId> KvCacheManager::Matches(scheduler::RequestId id, Prefix& p,
                                             int32_t num_tokens) const {
  const int32_t bs = math_.block_size;
  const int32_t n = std::min<int32_t>(num_tokens, static_cast<int32_t>(p.tokens->size()));
  int32_t max_blocks = std::max(0, (n - 1) / bs);
  if (ReuseOf(id) == Reuse::kCopy) {
    // The scoring window's queries are computed: they end the prefill.
    const KvPolicyConfig policy = PolicyOf(id);
    if (EvictsPrompt(policy, n)) {
      max_blocks = std::min(max_blocks, std::max(0, (n - ScoringWindow(policy, n)) / bs));
    }
  }
  std::vector<BlockId> blocks = CachedChain(p, max_blocks);
  if (ReuseOf(id) == Reuse::kCopy) {
    // Held blocks nobody else holds stop counting as free pages: when the
    // prefill peak plus them would not fit the pool, copy nothing.
    int64_t unreferenced = 0;
    for (BlockId b : blocks) unreferenced += pool_.BlockRefs(b) == 0 ? num_layers_ : 0;
    if (math_.PrefillPeakPages(PolicyOf(id), num_tokens) + unreferenced > pool_.num_pages()) {
      blocks.clear();
    }
  }
  return blocks;
}

int32_t KvCacheManager::CachedPrefixTokens(scheduler::RequestId id, int32_t num_tokens) const {
  if (ReuseOf(id) == Reuse::kNone || PagesHeld(id) > 0) return 0;
  return static_cast<int32_t>(Matches(id, *Find(id), num_tokens).size()) * math_.block_size;
}

int32_t KvCacheManager::AcquirePrefix(scheduler::RequestId id, int32_t num_tokens) {
  const Reuse reuse = ReuseOf(id);
  if (reuse == Reuse::kNone) return 0;
  Prefix* p = Find(id);
  SequenceKv& seq = Get(id);
  RESTKV_CHECK_EQ(PagesHeld(id), 0) << "request " << id << " acquires a prefix twice";
  const std::vector<BlockId> blocks = Matches(id, *p, num_tokens);
  for (BlockId b : blocks) {
    if (reuse == Reuse::kMap) {
      seq.MapCachedBlock(b);
    } else {
      seq.HoldPrefix(b);
    }
  }
  p->acquired = true;
  p->mapped_tokens = static_cast<int32_t>(blocks.size()) * math_.block_size;
  counters_.query_tokens += num_tokens;
  counters_.hit_tokens += p->mapped_tokens;
  return p->mapped_tokens;
}

int32_t KvCacheManager::prefix_tokens(scheduler::RequestId id) const {
  auto it = prefixes_.find(id);
  return it == prefixes_.end() || !it->second.acquired ? 0 : it->second.mapped_tokens;
}

PrefixStager* KvCacheManager::StagerFor(scheduler::RequestId id, int32_t num_tokens) {
  Prefix* p = Find(id);
  if (p == nullptr || !Evicting(PolicyOf(id))) return nullptr;
  std::unique_ptr<PrefixStager>& stager = stagers_[id];
  if (stager) return stager.get();
  const int32_t bs = math_.block_size;
  const int32_t full = std::min<int32_t>(num_tokens, static_cast<int32_t>(p->tokens->size())) / bs;
  // Blocks already cached (a held prefix among them) are not staged again.
  const std::vector<BlockId> cached = CachedChain(*p, full);
  const auto first = static_cast<int32_t>(cached.size());
  const BlockId parent = cached.empty() ? kNoBlock : cached.back();
  stager = std::make_unique<PrefixStager>(
      pool_, num_layers_, absl::MakeConstSpan(*p->tokens), first,
      std::vector<uint64_t>(p->hashes.begin() + first, p->hashes.begin() + full), parent);
  return stager.get();
}

void KvCacheManager::CacheFullBlocks(scheduler::RequestId id) {
  // Only an uncompressed cache holds exactly the K/V of its tokens: an
  // evicting request publishes what it staged instead.
  if (auto s = stagers_.find(id); s != stagers_.end() && s->second->complete()) {
    s->second->Publish();
    stagers_.erase(s);
  }
  Prefix* p = Find(id);
  auto it = seqs_.find(id);
  if (p == nullptr || Evicting(PolicyOf(id)) || it == seqs_.end()) return;
  SequenceKv& seq = *it->second;
  const int32_t bs = math_.block_size;
  int32_t cached = *std::min_element(seq.cached_len().begin(), seq.cached_len().end());
  cached = std::min<int32_t>(cached, static_cast<int32_t>(p->tokens->size()));
  const int32_t full = cached / bs;
  ExtendBlockHashes(*p->tokens, bs, full, &p->hashes);
  BlockId parent = kNoBlock;
  std::vector<int32_t> pages(num_layers_);
  for (int32_t i = 0; i < full; ++i) {
    BlockId b = seq.cached_block(i);
    if (b == kNoBlock) {
      const auto tokens = absl::MakeConstSpan(p->tokens->data() + i * bs, bs);
      b = pool_.Lookup(parent, p->hashes[i], tokens);
      if (b == kNoBlock) {
        // Its own pages become the cached block's (one reference: its own).
        for (int32_t l = 0; l < num_layers_; ++l) pages[l] = seq.page_ids(l)[i];
        b = pool_.InsertBlock(parent, p->hashes[i], tokens, pages);
        seq.MarkCached(i, b);
      }
      // else an equal block computed by another request is cached already:
      // this one stays private and the chain continues through that one.
    }
    parent = b;
  }
}

int32_t KvCacheManager::PagesHeld(scheduler::RequestId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? 0 : it->second->num_pages() + it->second->held_prefix_pages();
}

int32_t KvCacheManager::PrefillPeakPages(scheduler::RequestId id, int32_t num_tokens) const {
  const int32_t peak = static_cast<int32_t>(math_.PrefillPeakPages(PolicyOf(id), num_tokens));
  auto seq = seqs_.find(id);
  // Held read-only blocks are on top of the pages the prefill takes.
  const int32_t held = seq == seqs_.end() ? 0 : seq->second->held_prefix_pages();
  const Reuse reuse = ReuseOf(id);
  Prefix* p = Find(id);
  if (reuse == Reuse::kNone || p->acquired || PagesHeld(id) > 0) return peak + held;
  // Not admitted yet. Mapped blocks that others hold are shared for free;
  // held ones cost their pages unless others hold them already.
  int32_t adjust = 0;
  for (BlockId b : Matches(id, *p, num_tokens)) {
    const bool referenced = pool_.BlockRefs(b) > 0;
    if (reuse == Reuse::kMap && referenced) adjust -= num_layers_;
    if (reuse == Reuse::kCopy && !referenced) adjust += num_layers_;
  }
  return peak + adjust;
}

int32_t KvCacheManager::DecodePages(scheduler::RequestId id, int32_t num_tokens) const {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return static_cast<int32_t>(math_.PrefillPeakPages({}, num_tokens));
  return it->second->PagesNeeded(num_tokens);
}

bool KvCacheManager::CoversPrefill(scheduler::RequestId id, int32_t num_tokens,
                                   int32_t /*layer_begin*/, int32_t /*layer_end*/) const {
  // The promise is the whole remaining peak, whatever the slice: after the
  // slice the request still holds its pages and the next slice continues.
  return PrefillPeakPages(id, num_tokens) - PagesHeld(id) <= pool_.num_free();
}

bool KvCacheManager::AllocateDecode(scheduler::RequestId id, int32_t num_tokens) {
  return Get(id).Reserve(num_tokens);
}

void KvCacheManager::Release(scheduler::RequestId id) {
  // What it computed stays cached for its recompute (and for others).
  CacheFullBlocks(id);
  stagers_.erase(id);  // an unfinished prefill's staging is dropped
  seqs_.erase(id);
  auto it = prefixes_.find(id);
  if (it != prefixes_.end()) {
    it->second.acquired = false;
    it->second.mapped_tokens = 0;
  }
}

void KvCacheManager::Free(scheduler::RequestId id) {
  stagers_.erase(id);
  seqs_.erase(id);
  policies_.erase(id);
  prefixes_.erase(id);
}

SequenceKv& KvCacheManager::Get(scheduler::RequestId id) {
  auto& slot = seqs_[id];
  if (!slot) slot = std::make_unique<SequenceKv>(pool_, num_layers_);
  return *slot;
}

}  // namespace restkv::engine
