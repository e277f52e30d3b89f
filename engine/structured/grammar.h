// Grammar: a context-free grammar over BYTES, the form every front end
// (GBNF, regex, JSON Schema, choice, json_object) is compiled into and the
// GrammarMatcher (grammar_matcher.h) runs.
//
// Terminals are byte sets, so a token is matched byte by byte and a token
// that ends inside a terminal, or spans several, or splits a UTF-8 character
// needs no special case: characters are compiled into their UTF-8 byte
// sequences (Utf8Sequences below) when the grammar is built.
//
// Layout: every alternative of every rule is a run of Elements in
// `elements`, ended by one kEnd element. A position (an index into
// `elements`) is "where we are" inside one alternative.
//
//   rule r   alts[r] = {a0, a1}
//   elements ... a0:[kChars 3][kRule 5][kEnd]  a1:[kEnd] ...   (a1 is ε)
//
// Invariants (checked by GrammarBuilder::Build): every referenced rule has
// at least one alternative, and no rule can reach itself without consuming
// a byte (no left recursion, direct or through nullable prefixes), so the
// matcher's expansion of a position always terminates.
//
// Thread safety: a plain value, immutable once built.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace restkv::engine::structured {

// A set of bytes, 256 bits.
struct ByteSet {
  std::array<uint64_t, 4> bits{};
  void Add(uint8_t lo, uint8_t hi) {
    for (int b = lo; b <= hi; ++b) bits[b >> 6] |= uint64_t{1} << (b & 63);
  }
  [[nodiscard]] bool Has(uint8_t b) const { return (bits[b >> 6] >> (b & 63)) & 1; }
  bool operator==(const ByteSet&) const = default;
};

struct Element {
  enum class Kind : uint8_t { kEnd, kBytes, kRule };
  Kind kind = Kind::kEnd;
  int32_t value = 0;  // kBytes: index into Grammar::byte_sets; kRule: rule id
};

struct Grammar {
  std::vector<ByteSet> byte_sets;
  std::vector<Element> elements;
  std::vector<std::vector<int32_t>> alts;  // rule id -> start positions of its alternatives
  std::vector<std::string> rule_names;     // rule id -> name (for messages)
  int32_t root = 0;
};

// One symbol of an alternative while building.
struct Symbol {
  enum class Kind : uint8_t { kBytes, kRule };
  Kind kind;
  ByteSet bytes;     // kBytes
  int32_t rule = 0;  // kRule
  static Symbol Bytes(ByteSet s) { return {Kind::kBytes, s, 0}; }
  static Symbol Byte(uint8_t b) {
    ByteSet s;
    s.Add(b, b);
    return Bytes(s);
  }
  static Symbol Rule(int32_t id) { return {Kind::kRule, {}, id}; }
};
using Sequence = std::vector<Symbol>;

// Builds a Grammar rule by rule. Rules may be referenced before they are
// defined (Declare), so recursive grammars need no ordering.
class GrammarBuilder {
 public:
  // The id of the rule named `name`, creating it (with no alternatives yet)
  // the first time.
  int32_t Declare(const std::string& name);
  // A new rule with a unique generated name starting with `hint`.
  int32_t Fresh(const std::string& hint);
  void AddAlternative(int32_t rule, Sequence seq);
  [[nodiscard]] bool HasAlternatives(int32_t rule) const { return !alts_[rule].empty(); }
  [[nodiscard]] int32_t num_rules() const { return static_cast<int32_t>(alts_.size()); }
  [[nodiscard]] const std::string& name(int32_t rule) const { return names_[rule]; }

  // Helpers that return a symbol for a derived rule.
  static Sequence Literal(const std::string& bytes);  // the exact byte string
  Symbol Star(const Sequence& body);                  // body*   (R ::= body R | ε)
  Symbol Optional(const Sequence& body);              // body?
  // body{min,max}; max < 0 means unbounded. REQUIRES: 0 <= min, max < 0 or min <= max.
  Sequence Repeat(const Sequence& body, int32_t min, int32_t max);
  // A rule matching one character of the code point ranges `ranges`
  // (inclusive, any order; surrogates are skipped) in UTF-8.
  Symbol CodePoints(const std::vector<std::pair<uint32_t, uint32_t>>& ranges);

  // The grammar rooted at `root`. InvalidArgument naming the rule for an
  // undefined rule, left recursion, or more than kMaxElements elements.
  absl::StatusOr<Grammar> Build(int32_t root) const;

  static constexpr int32_t kMaxElements = 1 << 22;

 private:
  std::vector<std::string> names_;
  std::vector<std::vector<Sequence>> alts_;
  absl::flat_hash_map<std::string, int32_t> by_name_;  // declared (not generated) names
  int32_t fresh_ = 0;
};

// The UTF-8 encodings of the code points in [lo, hi] (surrogates skipped) as
// a list of byte-range sequences: each inner vector has one inclusive byte
// range per encoded byte, and the union of the sequences' products is exactly
// the encodings. REQUIRES: lo <= hi <= 0x10FFFF.
std::vector<std::vector<std::pair<uint8_t, uint8_t>>> Utf8Sequences(uint32_t lo, uint32_t hi);

}  // namespace restkv::engine::structured
