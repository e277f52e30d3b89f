#include "engine/structured/grammar.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/check.h"

namespace restkv::engine::structured {
namespace {

int Utf8Length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

std::vector<uint8_t> EncodeUtf8(uint32_t cp) {
  switch (Utf8Length(cp)) {
    case 1:
      return {static_cast<uint8_t>(cp)};
    case 2:
      return {static_cast<uint8_t>(0xC0 | (cp >> 6)), static_cast<uint8_t>(0x80 | (cp & 0x3F))};
    case 3:
      return {static_cast<uint8_t>(0xE0 | (cp >> 12)),
              static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F)),
              static_cast<uint8_t>(0x80 | (cp & 0x3F))};
    default:
      return {static_cast<uint8_t>(0xF0 | (cp >> 18)),
              static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F)),
              static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F)),
              static_cast<uint8_t>(0x80 | (cp & 0x3F))};
  }
}

// NOTE(restkv): a range of code points whose encodings have the same
// length and differ only in their trailing k bytes, with those bytes
// spanning their full 6-bit range, is one product of byte ranges. Any other
// range is split at the first boundary that breaks this, recursively.
void SplitUtf8(uint32_t lo, uint32_t hi,
               std::vector<std::vector<std::pair<uint8_t, uint8_t>>>* out) {
  if (lo > hi) return;
  if (lo <= 0xDFFF && hi >= 0xD800) {
    if (lo < 0xD800) SplitUtf8(lo, 0xD7FF, out);
    if (hi > 0xDFFF) SplitUtf8(0xE000, hi, out);
    return;
  }
  for (uint32_t max : {0x7Fu, 0x7FFu, 0xFFFFu}) {
    if (lo <= max && hi > max) {
      SplitUtf8(lo, max, out);
      SplitUtf8(max + 1, hi, out);
      return;
    }
  }
  const int n = Utf8Length(lo);
  for (int i = 1; i < n; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        SplitUtf8(lo, lo | m, out);
        SplitUtf8((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        SplitUtf8(lo, (hi & ~m) - 1, out);
        SplitUtf8(hi & ~m, hi, out);
        return;
      }
    }
  }
  const std::vector<uint8_t> a = EncodeUtf8(lo), b = EncodeUtf8(hi);
  std::vector<std::pair<uint8_t, uint8_t>> seq;
  for (size_t k = 0; k < a.size(); ++k) seq.emplace_back(a[k], b[k]);
  out->push_back(std::move(seq));
}

}  // namespace

std::vector<std::vector<std::pair<uint8_t, uint8_t>>> Utf8Sequences(uint32_t lo, uint32_t hi) {
  RESTKV_CHECK(lo <= hi && hi <= 0x10FFFF) << lo << ".." << hi;
  std::vector<std::vector<std::pair<uint8_t, uint8_t>>> out;
  SplitUtf8(lo, hi, &out);
  return out;
}

int32_t GrammarBuilder::Declare(const std::string& name) {
  auto [it, inserted] = by_name_.emplace(name, num_rules());
  if (inserted) {
    names_.push_back(name);
    alts_.emplace_back();
  }
  return it->second;
}

int32_t GrammarBuilder::Fresh(const std::string& hint) {
  // Generated names contain '#', which no front end accepts in a rule name.
  names_.push_back(absl::StrCat(hint, "#", fresh_++));
  alts_.emplace_back();
  return static_cast<int32_t>(names_.size() - 1);
}

void GrammarBuilder::AddAlternative(int32_t rule, Sequence seq) {
  RESTKV_CHECK(rule >= 0 && rule < num_rules()) << rule;
  alts_[rule].push_back(std::move(seq));
}

Sequence GrammarBuilder::Literal(const std::string& bytes) {
  Sequence seq;
  for (const char c : bytes) seq.push_back(Symbol::Byte(static_cast<uint8_t>(c)));
  return seq;
}

Symbol GrammarBuilder::Star(const Sequence& body) {
  const int32_t r = Fresh("star");
  Sequence loop = body;
  loop.push_back(Symbol::Rule(r));
  AddAlternative(r, std::move(loop));
  AddAlternative(r, {});
  return Symbol::Rule(r);
}

Symbol GrammarBuilder::Optional(const Sequence& body) {
  const int32_t r = Fresh("opt");
  AddAlternative(r, body);
  AddAlternative(r, {});
  return Symbol::Rule(r);
}

Sequence GrammarBuilder::Repeat(const Sequence& body, int32_t min, int32_t max) {
  RESTKV_CHECK(min >= 0 && (max < 0 || min <= max)) << min << "," << max;
  Sequence unit = body;
  if (body.size() > 1) {
    const int32_t r = Fresh("item");
    AddAlternative(r, body);
    unit = {Symbol::Rule(r)};
  }
  Sequence out;
  for (int32_t i = 0; i < min; ++i) out.insert(out.end(), unit.begin(), unit.end());
  if (max < 0) {
    out.push_back(Star(unit));
    return out;
  }
  // x{0,k} = (x (x (...)?)?)? : nested, so a shorter repetition never
  // needs to guess where it stops.
  Sequence rest;
  for (int32_t i = 0; i < max - min; ++i) {
    Sequence inner = unit;
    inner.insert(inner.end(), rest.begin(), rest.end());
    rest = {Optional(inner)};
  }
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

Symbol GrammarBuilder::CodePoints(const std::vector<std::pair<uint32_t, uint32_t>>& ranges) {
  ByteSet single;
  bool any_single = false;
  std::vector<Sequence> multi;
  for (const auto& [lo, hi] : ranges) {
    for (const auto& seq : Utf8Sequences(lo, hi)) {
      if (seq.size() == 1) {
        single.Add(seq[0].first, seq[0].second);
        any_single = true;
        continue;
      }
      Sequence s;
      for (const auto& [a, b] : seq) {
        ByteSet bs;
        bs.Add(a, b);
        s.push_back(Symbol::Bytes(bs));
      }
      multi.push_back(std::move(s));
    }
  }
  if (multi.empty() && any_single) return Symbol::Bytes(single);
  const int32_t r = Fresh("char");
  if (any_single) AddAlternative(r, {Symbol::Bytes(single)});
  for (Sequence& s : multi) AddAlternative(r, std::move(s));
  return Symbol::Rule(r);
}

absl::StatusOr<Grammar> GrammarBuilder::Build(int32_t root) const {
  const int32_t n = num_rules();
  RESTKV_CHECK(root >= 0 && root < n) << root;
  for (int32_t r = 0; r < n; ++r) {
    if (alts_[r].empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("rule '%s' is used but not defined", names_[r]));
    }
  }
  // Nullable rules, to a fixed point.
  std::vector<bool> nullable(n, false);
  for (bool changed = true; changed;) {
    changed = false;
    for (int32_t r = 0; r < n; ++r) {
      if (nullable[r]) continue;
      for (const Sequence& seq : alts_[r]) {
        const bool all = std::all_of(seq.begin(), seq.end(), [&](const Symbol& s) {
          return s.kind == Symbol::Kind::kRule && nullable[s.rule];
        });
        if (all) {
          nullable[r] = changed = true;
          break;
        }
      }
    }
  }
  // Left edges: rules a rule can start with before consuming a byte.
  std::vector<std::vector<int32_t>> left(n);
  for (int32_t r = 0; r < n; ++r) {
    for (const Sequence& seq : alts_[r]) {
      for (const Symbol& s : seq) {
        if (s.kind != Symbol::Kind::kRule) break;
        left[r].push_back(s.rule);
        if (!nullable[s.rule]) break;
      }
    }
  }
  // A cycle among left edges is left recursion (iterative DFS, 3 colours).
  std::vector<uint8_t> colour(n, 0);
  for (int32_t start = 0; start < n; ++start) {
    if (colour[start] != 0) continue;
    std::vector<std::pair<int32_t, size_t>> stack{{start, 0}};
    colour[start] = 1;
    while (!stack.empty()) {
      auto& [r, i] = stack.back();
      if (i == left[r].size()) {
        colour[r] = 2;
        stack.pop_back();
        continue;
      }
      const int32_t next = left[r][i++];
      if (colour[next] == 1) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "rule '%s' is left-recursive (it can reach itself without consuming input)",
            names_[next]));
      }
      if (colour[next] == 0) {
        colour[next] = 1;
        stack.emplace_back(next, 0);
      }
    }
  }
  Grammar g;
  g.root = root;
  g.rule_names = names_;
  g.alts.resize(n);
  std::map<std::array<uint64_t, 4>, int32_t> set_ids;
  for (int32_t r = 0; r < n; ++r) {
    for (const Sequence& seq : alts_[r]) {
      g.alts[r].push_back(static_cast<int32_t>(g.elements.size()));
      for (const Symbol& s : seq) {
        if (s.kind == Symbol::Kind::kRule) {
          g.elements.push_back({Element::Kind::kRule, s.rule});
          continue;
        }
        auto [it, inserted] =
            set_ids.emplace(s.bytes.bits, static_cast<int32_t>(g.byte_sets.size()));
        if (inserted) g.byte_sets.push_back(s.bytes);
        g.elements.push_back({Element::Kind::kBytes, it->second});
      }
      g.elements.push_back({Element::Kind::kEnd, 0});
      if (static_cast<int64_t>(g.elements.size()) > kMaxElements) {
        return absl::InvalidArgumentError(
            absl::StrFormat("the grammar is too large (more than %d elements)", kMaxElements));
      }
    }
  }
  return g;
}

}  // namespace restkv::engine::structured
