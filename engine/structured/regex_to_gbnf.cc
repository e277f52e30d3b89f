#include "engine/structured/regex_to_gbnf.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/tokenizer/utf8.h"

namespace restkv::engine::structured {
namespace {

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

Ranges Normalize(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  for (const auto& x : r) {
    if (!out.empty() && x.first <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, x.second);
    } else {
      out.push_back(x);
    }
  }
  return out;
}

Ranges Complement(const Ranges& in) {
  Ranges out;
  uint32_t next = 0;
  for (const auto& [lo, hi] : Normalize(in)) {
    if (lo > next) out.emplace_back(next, lo - 1);
    next = hi + 1;
  }
  if (next <= 0x10FFFF) out.emplace_back(next, 0x10FFFF);
  return out;
}

// Removes [lo, hi] from `r`; returns whether anything was removed.
bool Remove(Ranges* r, uint32_t lo, uint32_t hi) {
  Ranges out;
  bool removed = false;
  for (const auto& [a, b] : *r) {
    if (b < lo || a > hi) {
      out.emplace_back(a, b);
      continue;
    }
    removed = true;
    if (a < lo) out.emplace_back(a, lo - 1);
    if (b > hi) out.emplace_back(hi + 1, b);
  }
  *r = std::move(out);
  return removed;
}

// "(a | b | ...)", with StrCat: GCC 12's -Wrestrict misfires on
// "literal" + std::string chains.
std::string Group(const std::vector<std::string>& alts) {
  return absl::StrCat("(", absl::StrJoin(alts, " | "), ")");
}

std::string ClassText(const Ranges& r) {
  std::string s = "[";
  for (const auto& [lo, hi] : r) {
    s += absl::StrFormat("\\U%08X", lo);
    if (hi != lo) s += absl::StrFormat("-\\U%08X", hi);
  }
  return s + "]";
}

class RegexParser {
 public:
  RegexParser(std::string_view s, bool json) : s_(s), json_(json) {}

  absl::StatusOr<std::string> Run() {
    if (!s_.empty() && s_[0] == '^') ++pos_;
    std::string out;
    if (absl::Status st = Alternation(&out); !st.ok()) return st;
    if (pos_ < s_.size()) return Error(s_[pos_] == ')' ? "unbalanced ')'" : "unexpected character");
    return out;
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrFormat("regex: %s at offset %d", what, pos_));
  }
  [[nodiscard]] bool AtEnd() const { return pos_ >= s_.size(); }
  // `$` as the last character of the pattern (or before a closing group at
  // the end) anchors the end: the match is full anyway.
  [[nodiscard]] bool IsFinalDollar() const {
    if (s_[pos_] != '$') return false;
    for (size_t p = pos_ + 1; p < s_.size(); ++p) {
      if (s_[p] != ')') return false;
    }
    return true;
  }

  absl::Status Alternation(std::string* out) {
    std::vector<std::string> alts;
    while (true) {
      std::string seq;
      if (absl::Status st = Concatenation(&seq); !st.ok()) return st;
      alts.push_back(seq.empty() ? "\"\"" : seq);
      if (AtEnd() || s_[pos_] != '|') break;
      ++pos_;
    }
    *out = alts.size() == 1 ? alts[0] : Group(alts);
    return absl::OkStatus();
  }

  absl::Status Concatenation(std::string* out) {
    std::vector<std::string> items;
    while (!AtEnd() && s_[pos_] != '|' && s_[pos_] != ')') {
      if (IsFinalDollar()) {
        ++pos_;
        continue;
      }
      std::string atom;
      if (absl::Status st = Atom(&atom); !st.ok()) return st;
      if (absl::Status st = Quantifier(&atom); !st.ok()) return st;
      items.push_back(std::move(atom));
    }
    *out = absl::StrJoin(items, " ");
    return absl::OkStatus();
  }

  absl::Status Quantifier(std::string* atom) {
    if (AtEnd()) return absl::OkStatus();
    const char c = s_[pos_];
    std::string q;
    if (c == '*' || c == '+' || c == '?') {
      q = std::string(1, c);
      ++pos_;
    } else if (c == '{') {
      size_t p = pos_ + 1;
      auto digits = [&] {
        const size_t start = p;
        while (p < s_.size() && s_[p] >= '0' && s_[p] <= '9') ++p;
        return std::string(s_.substr(start, p - start));
      };
      const std::string lo = digits();
      std::string hi = lo;
      bool comma = false;
      if (p < s_.size() && s_[p] == ',') {
        comma = true;
        ++p;
        hi = digits();
      }
      if (p >= s_.size() || s_[p] != '}' || (lo.empty() && hi.empty())) {
        return absl::OkStatus();  // not a quantifier: Python takes '{' literally
      }
      if (lo.size() > 5 || hi.size() > 5) return Error("repetition count above 10000");
      q = absl::StrCat("{", lo.empty() ? "0" : lo, comma ? "," : "", comma ? hi : "", "}");
      pos_ = p + 1;
    } else {
      return absl::OkStatus();
    }
    if (!AtEnd() && (s_[pos_] == '?' || s_[pos_] == '+')) ++pos_;  // lazy / possessive
    if (!AtEnd() && (s_[pos_] == '*' || s_[pos_] == '+' || s_[pos_] == '?' || s_[pos_] == '{')) {
      return Error("multiple repeat");
    }
    *atom = absl::StrCat("(", *atom, ")", q);
    return absl::OkStatus();
  }

  // One code point of the pattern text (raw UTF-8).
  absl::Status RawChar(uint32_t* cp) {
    const auto c = static_cast<uint8_t>(s_[pos_]);
    const size_t len = c < 0x80         ? 1
                       : (c >> 5) == 6  ? 2
                       : (c >> 4) == 14 ? 3
                       : (c >> 3) == 30 ? 4
                                        : 0;
    if (len == 0 || pos_ + len > s_.size()) return Error("invalid UTF-8");
    uint32_t v = len == 1 ? c : c & (0xFF >> (len + 1));
    for (size_t i = 1; i < len; ++i) v = (v << 6) | (static_cast<uint8_t>(s_[pos_ + i]) & 0x3F);
    pos_ += len;
    *cp = v;
    return absl::OkStatus();
  }

  absl::Status Hex(int digits, uint32_t* cp) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      const char c = AtEnd() ? '\0' : s_[pos_];
      int d = -1;
      if (c >= '0' && c <= '9') d = c - '0';
      if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') d = (c | 0x20) - 'a' + 10;
      if (d < 0) return Error("bad hex escape");
      v = v * 16 + static_cast<uint32_t>(d);
      ++pos_;
    }
    if (v > 0x10FFFF) return Error("code point out of range");
    *cp = v;
    return absl::OkStatus();
  }

  // After a backslash: a set (\d ...) into `set`, or one code point.
  absl::Status Escape(Ranges* set, uint32_t* cp, bool* is_set) {
    if (AtEnd()) return Error("a trailing backslash");
    const char e = s_[pos_++];
    *is_set = true;
    const Ranges digit{{'0', '9'}};
    const Ranges word{{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
    const Ranges space{{'\t', '\r'}, {' ', ' '}};
    switch (e) {
      case 'd':
        *set = digit;
        return absl::OkStatus();
      case 'w':
        *set = word;
        return absl::OkStatus();
      case 's':
        *set = space;
        return absl::OkStatus();
      case 'D':
        *set = Complement(digit);
        return absl::OkStatus();
      case 'W':
        *set = Complement(word);
        return absl::OkStatus();
      case 'S':
        *set = Complement(space);
        return absl::OkStatus();
      default:
        break;
    }
    *is_set = false;
    switch (e) {
      case 'n':
        *cp = '\n';
        return absl::OkStatus();
      case 'r':
        *cp = '\r';
        return absl::OkStatus();
      case 't':
        *cp = '\t';
        return absl::OkStatus();
      case 'f':
        *cp = '\f';
        return absl::OkStatus();
      case 'v':
        *cp = '\v';
        return absl::OkStatus();
      case '0':
        *cp = 0;
        return absl::OkStatus();
      case 'x':
        return Hex(2, cp);
      case 'u':
        return Hex(4, cp);
      case 'U':
        return Hex(8, cp);
      default:
        break;
    }
    if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '1' && e <= '9')) {
      --pos_;
      return Error(absl::StrCat("unsupported escape \\", std::string(1, e),
                                e >= '1' && e <= '9' ? " (backreferences are not regular)" : ""));
    }
    *cp = static_cast<uint8_t>(e);  // escaped punctuation
    return absl::OkStatus();
  }

  // GBNF for a set of code points (one character), honouring JSON mode.
  [[nodiscard]] std::string SetText(Ranges r) const {
    r = Normalize(std::move(r));
    if (!json_) return ClassText(r);
    std::vector<std::string> alts;
    if (Remove(&r, '"', '"')) alts.push_back(GbnfLiteral("\\\""));
    if (Remove(&r, '\\', '\\')) alts.push_back(GbnfLiteral("\\\\"));
    if (Remove(&r, '\n', '\n')) alts.push_back(GbnfLiteral("\\n"));
    if (Remove(&r, '\t', '\t')) alts.push_back(GbnfLiteral("\\t"));
    if (Remove(&r, '\r', '\r')) alts.push_back(GbnfLiteral("\\r"));
    Remove(&r, 0, 0x1F);
    if (!r.empty()) alts.insert(alts.begin(), ClassText(r));
    if (alts.empty()) return "";
    return alts.size() == 1 ? alts[0] : Group(alts);
  }

  absl::Status Atom(std::string* out) {
    const char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      if (!AtEnd() && s_[pos_] == '?') {
        ++pos_;
        if (!AtEnd() && s_[pos_] == ':') {
          ++pos_;
        } else if (s_.substr(pos_, 2) == "P<" ||
                   (!AtEnd() && s_[pos_] == '<' && s_.substr(pos_, 2) != "<=" &&
                    s_.substr(pos_, 2) != "<!")) {
          const size_t close = s_.find('>', pos_);
          if (close == std::string_view::npos) return Error("unterminated group name");
          pos_ = close + 1;
        } else {
          return Error("unsupported group (lookaround, flags and conditionals are not supported)");
        }
      }
      std::string inner;
      if (absl::Status st = Alternation(&inner); !st.ok()) return st;
      if (AtEnd() || s_[pos_] != ')') return Error("missing ')'");
      ++pos_;
      *out = absl::StrCat("(", inner, ")");
      return absl::OkStatus();
    }
    if (c == '[') return Class(out);
    if (c == '.') {
      ++pos_;
      *out = SetText(Complement({{'\n', '\n'}}));
      return absl::OkStatus();
    }
    if (c == '*' || c == '+' || c == '?' || c == '{') {
      if (c != '{') return Error("nothing to repeat");
    }
    if (c == '^') return Error("'^' is supported only at the start");
    if (c == '$') return Error("'$' is supported only at the end");
    uint32_t cp = 0;
    if (c == '\\') {
      ++pos_;
      Ranges set;
      bool is_set = false;
      if (absl::Status st = Escape(&set, &cp, &is_set); !st.ok()) return st;
      if (is_set) {
        *out = SetText(set);
        if (out->empty()) return Error("a set JSON strings cannot contain");
        return absl::OkStatus();
      }
    } else if (absl::Status st = RawChar(&cp); !st.ok()) {
      return st;
    }
    *out = SetText({{cp, cp}});
    if (out->empty()) return Error("a character JSON strings cannot contain");
    return absl::OkStatus();
  }

  absl::Status Class(std::string* out) {
    ++pos_;
    bool negate = false;
    if (!AtEnd() && s_[pos_] == '^') {
      negate = true;
      ++pos_;
    }
    Ranges r;
    bool first = true;
    while (true) {
      if (AtEnd()) return Error("unterminated character class");
      if (s_[pos_] == ']' && !first) break;
      first = false;
      uint32_t lo = 0;
      if (s_[pos_] == '\\') {
        ++pos_;
        Ranges set;
        bool is_set = false;
        if (absl::Status st = Escape(&set, &lo, &is_set); !st.ok()) return st;
        if (is_set) {
          r.insert(r.end(), set.begin(), set.end());
          continue;
        }
      } else if (absl::Status st = RawChar(&lo); !st.ok()) {
        return st;
      }
      uint32_t hi = lo;
      if (pos_ + 1 < s_.size() && s_[pos_] == '-' && s_[pos_ + 1] != ']') {
        ++pos_;
        if (s_[pos_] == '\\') {
          ++pos_;
          Ranges set;
          bool is_set = false;
          if (absl::Status st = Escape(&set, &hi, &is_set); !st.ok()) return st;
          if (is_set) return Error("bad character range");
        } else if (absl::Status st = RawChar(&hi); !st.ok()) {
          return st;
        }
        if (hi < lo) return Error("bad character range");
      }
      r.emplace_back(lo, hi);
    }
    ++pos_;
    if (negate) r = Complement(r);
    if (r.empty()) return Error("an empty character class");
    *out = SetText(r);
    if (out->empty()) return Error("a class JSON strings cannot contain");
    return absl::OkStatus();
  }

  std::string_view s_;
  bool json_;
  size_t pos_ = 0;
};

}  // namespace

std::string GbnfLiteral(std::string_view bytes) {
  std::string out = "\"";
  for (const char ch : bytes) {
    const auto c = static_cast<uint8_t>(ch);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (c < 0x20 || c == 0x7F) {
      out += absl::StrFormat("\\x%02X", c);
    } else {
      out.push_back(ch);  // UTF-8 bytes pass through: GBNF literals are UTF-8
    }
  }
  return out + "\"";
}

absl::StatusOr<std::string> RegexToGbnf(std::string_view regex, bool json_string) {
  return RegexParser(regex, json_string).Run();
}

}  // namespace restkv::engine::structured
