#include "engine/structured/grammar_matcher.h"

#include <algorithm>
#include <bit>
#include <limits>

#include "common/check.h"

namespace restkv::engine::structured {

CompiledGrammar::CompiledGrammar(Grammar grammar, std::shared_ptr<const TokenVocabulary> vocab)
    : grammar_(std::move(grammar)), vocab_(std::move(vocab)) {}

std::shared_ptr<const TokenBitmask> CompiledGrammar::FindMask(
    const std::vector<int32_t>& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = memo_.find(key);
  return it == memo_.end() ? nullptr : it->second;
}

void CompiledGrammar::StoreMask(const std::vector<int32_t>& key,
                                const std::shared_ptr<const TokenBitmask>& mask) const {
  const int64_t bytes = static_cast<int64_t>(mask->size() * sizeof(uint64_t) + key.size() * 4);
  std::lock_guard<std::mutex> lock(mu_);
  if (memo_bytes_ + bytes > kMaxMemoBytes) return;
  if (memo_.emplace(key, mask).second) memo_bytes_ += bytes;
}

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar,
                               const std::vector<int32_t>& extra_end_ids)
    : compiled_(std::move(grammar)),
      g_(compiled_->grammar()),
      end_ids_(compiled_->vocab().end_ids()) {
  for (const int32_t id : extra_end_ids) {
    if (id >= 0 && id < compiled_->vocab().vocab_size()) end_ids_.push_back(id);
  }
  std::sort(end_ids_.begin(), end_ids_.end());
  end_ids_.erase(std::unique(end_ids_.begin(), end_ids_.end()), end_ids_.end());
  for (const int32_t start : g_.alts[g_.root]) {
    const Expansion& e = Expand(Intern(start, -1));
    state_.nodes.insert(state_.nodes.end(), expansion_pool_.begin() + e.begin,
                        expansion_pool_.begin() + e.begin + e.size);
    state_.accept |= e.accept;
  }
  std::sort(state_.nodes.begin(), state_.nodes.end());
  state_.nodes.erase(std::unique(state_.nodes.begin(), state_.nodes.end()), state_.nodes.end());
}

int32_t GrammarMatcher::Intern(int32_t pos, int32_t parent) {
  const uint64_t key =
      (static_cast<uint64_t>(static_cast<uint32_t>(pos)) << 32) | static_cast<uint32_t>(parent + 1);
  auto [it, inserted] = interned_.emplace(key, static_cast<int32_t>(arena_.size()));
  if (inserted) {
    arena_.push_back({pos, parent});
    expansions_.emplace_back();
    visit_stamp_.push_back(0);
  }
  return it->second;
}

void GrammarMatcher::ExpandInto(int32_t n, std::vector<int32_t>* out, bool* accept) {
  if (visit_stamp_[n] == stamp_) return;
  visit_stamp_[n] = stamp_;
  const Node node = arena_[n];
  const Element& e = g_.elements[node.pos];
  switch (e.kind) {
    case Element::Kind::kBytes:
      out->push_back(n);
      return;
    case Element::Kind::kEnd:
      // The alternative is complete: return to the frame below.
      if (node.parent < 0) {
        *accept = true;
      } else {
        ExpandInto(node.parent, out, accept);
      }
      return;
    case Element::Kind::kRule: {
      // A call in tail position returns straight to our own parent.
      const bool tail = g_.elements[node.pos + 1].kind == Element::Kind::kEnd;
      const int32_t cont = tail ? node.parent : Intern(node.pos + 1, node.parent);
      for (const int32_t start : g_.alts[e.value]) ExpandInto(Intern(start, cont), out, accept);
      return;
    }
  }
}

const GrammarMatcher::Expansion& GrammarMatcher::Expand(int32_t n) {
  if (expansions_[n].begin < 0) {
    std::vector<int32_t> out;
    bool accept = false;
    if (++stamp_ == 0) {
      std::fill(visit_stamp_.begin(), visit_stamp_.end(), 0);
      stamp_ = 1;
    }
    ExpandInto(n, &out, &accept);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    Expansion& x = expansions_[n];
    x.begin = static_cast<int32_t>(expansion_pool_.size());
    x.size = static_cast<int32_t>(out.size());
    x.accept = accept;
    expansion_pool_.insert(expansion_pool_.end(), out.begin(), out.end());
  }
  return expansions_[n];
}

void GrammarMatcher::Advance(const State& from, uint8_t byte, State* to) {
  to->nodes.clear();
  to->accept = false;
  for (const int32_t n : from.nodes) {
    const Node node = arena_[n];
    if (!g_.byte_sets[g_.elements[node.pos].value].Has(byte)) continue;
    const Expansion& e = Expand(Intern(node.pos + 1, node.parent));
    to->nodes.insert(to->nodes.end(), expansion_pool_.begin() + e.begin,
                     expansion_pool_.begin() + e.begin + e.size);
    to->accept |= e.accept;
  }
  if (from.nodes.size() > 1) {
    std::sort(to->nodes.begin(), to->nodes.end());
    to->nodes.erase(std::unique(to->nodes.begin(), to->nodes.end()), to->nodes.end());
  }
}

std::vector<int32_t> GrammarMatcher::Key(const State& s) const {
  std::vector<int32_t> key;
  for (const int32_t top : s.nodes) {
    for (int32_t n = top; n >= 0; n = arena_[n].parent) key.push_back(arena_[n].pos);
    key.push_back(-1);
  }
  return key;
}

void GrammarMatcher::MaybeCompact() {
  if (arena_.size() <= kMaxArenaNodes) return;
  std::vector<std::vector<int32_t>> chains;  // bottom to top
  for (const int32_t top : state_.nodes) {
    std::vector<int32_t> chain;
    for (int32_t n = top; n >= 0; n = arena_[n].parent) chain.push_back(arena_[n].pos);
    std::reverse(chain.begin(), chain.end());
    chains.push_back(std::move(chain));
  }
  arena_.clear();
  interned_.clear();
  expansions_.clear();
  expansion_pool_.clear();
  visit_stamp_.clear();
  stamp_ = 0;
  state_.nodes.clear();
  for (const auto& chain : chains) {
    int32_t parent = -1;
    for (const int32_t pos : chain) parent = Intern(pos, parent);
    state_.nodes.push_back(parent);
  }
  std::sort(state_.nodes.begin(), state_.nodes.end());
}

void GrammarMatcher::WalkTrie(TokenBitmask* mask) {
  const TokenVocabulary& v = compiled_->vocab();
  const auto& nodes = v.nodes();
  const auto& ids = v.token_ids();
  if (walk_.empty()) {
    uint16_t max_depth = 0;
    for (const auto& n : nodes) max_depth = std::max(max_depth, n.depth);
    walk_.resize(max_depth + 1);
  }
  walk_[0] = state_;
  const int32_t num_nodes = static_cast<int32_t>(nodes.size());
  for (int32_t i = 1; i < num_nodes;) {
    const TokenVocabulary::Node& n = nodes[i];
    State& here = walk_[n.depth];
    Advance(walk_[n.depth - 1], n.byte, &here);
    if (here.dead()) {
      i = n.subtree_end;
      continue;
    }
    for (int32_t t = n.tokens_begin; t < n.tokens_end; ++t) {
      (*mask)[ids[t] >> 6] |= uint64_t{1} << (ids[t] & 63);
    }
    ++i;
  }
}

int32_t GrammarMatcher::FillNextTokenMask(TokenBitmask* mask) {
  MaybeCompact();
  const int32_t vocab = compiled_->vocab().vocab_size();
  std::vector<int32_t> key = Key(state_);
  if (std::shared_ptr<const TokenBitmask> memo = compiled_->FindMask(key)) {
    *mask = *memo;
  } else {
    mask->assign((vocab + 63) / 64, 0);
    WalkTrie(mask);
    compiled_->StoreMask(key, std::make_shared<const TokenBitmask>(*mask));
  }
  // End tokens (a stop id may also be an ordinary token the trie allowed)
  // only where the grammar may end.
  for (const int32_t id : end_ids_) {
    const uint64_t bit = uint64_t{1} << (id & 63);
    (*mask)[id >> 6] = state_.accept ? ((*mask)[id >> 6] | bit) : ((*mask)[id >> 6] & ~bit);
  }
  int32_t count = 0;
  for (const uint64_t w : *mask) count += std::popcount(w);
  return count;
}

bool GrammarMatcher::AcceptToken(int32_t token) {
  if (std::binary_search(end_ids_.begin(), end_ids_.end(), token)) return state_.accept;
  const TokenVocabulary& v = compiled_->vocab();
  if (token < 0 || token >= v.vocab_size() || v.piece(token).empty()) return false;
  MaybeCompact();
  State cur = state_, next;
  for (const char c : v.piece(token)) {
    Advance(cur, static_cast<uint8_t>(c), &next);
    if (next.dead()) return false;
    std::swap(cur, next);
  }
  state_ = std::move(cur);
  return true;
}

void ApplyTokenMask(const TokenBitmask& mask, int32_t mask_vocab, absl::Span<float> logits) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const int64_t n = static_cast<int64_t>(logits.size());
  const int64_t covered = std::min<int64_t>(n, mask_vocab);
  // A word at a time: masks are mostly all-clear (structure) or all-set
  // (inside strings), so most words cost one comparison.
  for (int64_t base = 0; base < covered; base += 64) {
    const uint64_t word = mask[base >> 6];
    const int64_t end = std::min<int64_t>(base + 64, covered);
    if (word == ~uint64_t{0} && end - base == 64) continue;
    if (word == 0) {
      std::fill(logits.begin() + base, logits.begin() + end, kNegInf);
      continue;
    }
    for (int64_t t = base; t < end; ++t) {
      if (!((word >> (t - base)) & 1)) logits[t] = kNegInf;
    }
  }
  for (int64_t t = covered; t < n; ++t) logits[t] = kNegInf;
}

}  // namespace restkv::engine::structured
