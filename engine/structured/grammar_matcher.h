// CompiledGrammar and GrammarMatcher: the token-mask engine.
//
// A CompiledGrammar is a byte-level Grammar (grammar.h) bound to a
// TokenVocabulary (token_vocabulary.h); it is built once per distinct
// request grammar (GrammarCompiler caches them) and shared by every request
// and choice that uses it. A GrammarMatcher is one sequence's position in
// it: FillNextTokenMask says which tokens may come next, AcceptToken moves
// past the sampled one.
//
// The parser is a pushdown recogniser over bytes, like llama.cpp's grammar
// engine: a state is a set of stacks; each stack's top is a position at a
// byte set, the frames below are where to return after the rules it is in.
// Stacks are hash-consed nodes (position, parent) in a per-matcher arena, so
// equal stacks are equal ids, and the expansion of a node (calling rules,
// returning from finished ones, until every top waits for a byte) is
// computed once per node. A rule called as the last element of an
// alternative pushes no frame (a tail call), so `x*` loops return to the
// same node instead of growing the stack.
//
// Mask: a preorder walk of the vocabulary trie, advancing the state by one
// byte per trie edge and skipping a subtree as soon as its prefix is
// rejected. Masks are memoised per CompiledGrammar by the state's stacks
// (positions from top to bottom), which repeat constantly: every character
// of a JSON string leaves the same state. End tokens are allowed exactly
// where the grammar may end (the root rule can be complete here).
//
//   state ──walk trie──► mask bits      sampled token ──bytes──► next state
//
// Thread safety: a CompiledGrammar may be shared across threads (its memo is
// under a mutex). A GrammarMatcher is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "engine/structured/grammar.h"
#include "engine/structured/token_vocabulary.h"

namespace restkv::engine::structured {

// Bit t of word t / 64 is token t.
using TokenBitmask = std::vector<uint64_t>;

class CompiledGrammar {
 public:
  CompiledGrammar(Grammar grammar, std::shared_ptr<const TokenVocabulary> vocab);

  [[nodiscard]] const Grammar& grammar() const { return grammar_; }
  [[nodiscard]] const TokenVocabulary& vocab() const { return *vocab_; }

  // The memoised trie part of the mask for a state key, or nullptr.
  [[nodiscard]] std::shared_ptr<const TokenBitmask> FindMask(const std::vector<int32_t>& key) const;
  // Remembers a mask, unless the memo already holds kMaxMemoBytes.
  void StoreMask(const std::vector<int32_t>& key,
                 const std::shared_ptr<const TokenBitmask>& mask) const;

  static constexpr int64_t kMaxMemoBytes = 64LL << 20;

 private:
  const Grammar grammar_;
  const std::shared_ptr<const TokenVocabulary> vocab_;
  mutable std::mutex mu_;
  mutable absl::flat_hash_map<std::vector<int32_t>, std::shared_ptr<const TokenBitmask>> memo_
      ABSL_GUARDED_BY(mu_);
  mutable int64_t memo_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

class GrammarMatcher {
 public:
  // extra_end_ids: more tokens that end the sequence (a request's
  // stop_token_ids), allowed like the vocabulary's end ids.
  explicit GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar,
                          const std::vector<int32_t>& extra_end_ids = {});

  // Sets `mask` to [ceil(vocab_size / 64)] words with bit t set iff token t
  // may come next. Returns the number of allowed tokens (0: a dead end,
  // which a well-formed grammar reaches only when its language is empty).
  int32_t FillNextTokenMask(TokenBitmask* mask);

  // Moves past `token`. False (state unchanged) if the token is not allowed
  // here. An end token is allowed iff CanEnd(); accepting one changes
  // nothing (the sequence is over).
  bool AcceptToken(int32_t token);

  // The text so far is a complete sentence of the grammar.
  [[nodiscard]] bool CanEnd() const { return state_.accept; }
  // Complete, and no byte can follow: only an end token is left.
  [[nodiscard]] bool IsTerminated() const { return state_.accept && state_.nodes.empty(); }
  // The state holds more than kMaxStacks parse stacks (a grammar ambiguous
  // enough that masks would get slow for every request in the batch): the
  // caller should end the sequence with an error.
  [[nodiscard]] bool TooAmbiguous() const {
    return state_.nodes.size() > static_cast<size_t>(kMaxStacks);
  }

  static constexpr int32_t kMaxStacks = 1024;

 private:
  struct State {
    std::vector<int32_t> nodes;  // arena ids of stacks whose top is at a byte set; sorted, unique
    bool accept = false;
    [[nodiscard]] bool dead() const { return nodes.empty() && !accept; }
  };
  struct Node {
    int32_t pos;
    int32_t parent;  // -1: the bottom of the stack
  };
  struct Expansion {
    int32_t begin = -1, size = 0;  // into expansion_pool_; begin -1: not computed
    bool accept = false;
  };

  int32_t Intern(int32_t pos, int32_t parent);
  // The byte-waiting nodes and completion reachable from node `n`.
  const Expansion& Expand(int32_t n);
  void ExpandInto(int32_t n, std::vector<int32_t>* out, bool* accept);
  void Advance(const State& from, uint8_t byte, State* to);
  // Stacks of the state, top to bottom, -1 between stacks; plus accept.
  [[nodiscard]] std::vector<int32_t> Key(const State& s) const;
  // Clears the arena when it has grown past kMaxArenaNodes, keeping state_.
  void MaybeCompact();
  void WalkTrie(TokenBitmask* mask);

  static constexpr size_t kMaxArenaNodes = 1 << 20;

  std::shared_ptr<const CompiledGrammar> compiled_;
  const Grammar& g_;
  std::vector<int32_t> end_ids_;
  std::vector<Node> arena_;
  absl::flat_hash_map<uint64_t, int32_t> interned_;
  std::vector<Expansion> expansions_;  // [arena_]
  std::vector<int32_t> expansion_pool_;
  std::vector<uint32_t> visit_stamp_;  // [arena_], for ExpandInto
  uint32_t stamp_ = 0;
  State state_;
  std::vector<State> walk_;  // [max depth + 1] scratch for WalkTrie
};

// Sets logits[t] = -inf for every token whose bit in `mask` is clear; tokens
// at or past the mask's vocabulary (a padded output layer) are cleared too.
void ApplyTokenMask(const TokenBitmask& mask, int32_t mask_vocab, absl::Span<float> logits);

}  // namespace restkv::engine::structured
