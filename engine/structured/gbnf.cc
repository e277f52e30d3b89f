#include "engine/structured/gbnf.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/tokenizer/utf8.h"

namespace restkv::engine::structured {
namespace {

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

// Ranges not covered by `in` within [0, 0x10FFFF].
Ranges Complement(Ranges in) {
  std::sort(in.begin(), in.end());
  Ranges out;
  uint32_t next = 0;
  for (const auto& [lo, hi] : in) {
    if (lo > next) out.emplace_back(next, lo - 1);
    next = std::max(next, hi + 1);
  }
  if (next <= 0x10FFFF) out.emplace_back(next, 0x10FFFF);
  return out;
}

class GbnfParser {
 public:
  explicit GbnfParser(std::string_view text) : s_(text) {}

  absl::StatusOr<Grammar> Parse() {
    SkipSpace(true);
    bool any = false;
    while (pos_ < s_.size()) {
      const std::string name = Name();
      if (name.empty()) return Error("a rule name");
      SkipSpace(false);
      if (s_.substr(pos_, 3) != "::=") return Error("'::='");
      pos_ += 3;
      SkipSpace(true);
      const int32_t rule = b_.Declare(name);
      if (defined_.size() <= static_cast<size_t>(rule)) defined_.resize(rule + 1, false);
      if (defined_[rule]) {
        return Error(absl::StrCat("a new rule name ('", name, "' is defined twice)"));
      }
      defined_[rule] = true;
      if (absl::Status st = Alternates(rule, false); !st.ok()) return st;
      if (pos_ < s_.size() && s_[pos_] != '\n') return Error("the end of the line");
      SkipSpace(true);
      any = true;
    }
    if (!any) return absl::InvalidArgumentError("GBNF: the grammar is empty");
    const int32_t root = b_.Declare("root");
    if (defined_.size() <= static_cast<size_t>(root) || !defined_[root]) {
      return absl::InvalidArgumentError("GBNF: no rule named 'root'");
    }
    absl::StatusOr<Grammar> g = b_.Build(root);
    if (!g.ok()) return absl::InvalidArgumentError(absl::StrCat("GBNF: ", g.status().message()));
    return g;
  }

 private:
  absl::Status Error(std::string_view expected) const {
    int line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    return absl::InvalidArgumentError(
        absl::StrFormat("GBNF: line %d column %d: expected %s", line, col, expected));
  }

  // Spaces, tabs, carriage returns and comments; newlines only when
  // `newlines`. At the top level a newline followed by `|` also continues.
  void SkipSpace(bool newlines) {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      const bool blank = c == ' ' || c == '\t' || c == '\r';
      if (blank || (c == '\n' && (newlines || NextLineContinues()))) {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }
  [[nodiscard]] bool NextLineContinues() const {
    size_t p = pos_ + 1;
    while (p < s_.size() && (s_[p] == ' ' || s_[p] == '\t' || s_[p] == '\r')) ++p;
    return p < s_.size() && s_[p] == '|';
  }

  static bool IsNameChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  }
  std::string Name() {
    const size_t start = pos_;
    while (pos_ < s_.size() && IsNameChar(s_[pos_])) ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

  // One code point of a literal or class (raw UTF-8 or an escape); -1 and
  // an error in `st` when malformed.
  int64_t Char(absl::Status* st) {
    if (pos_ >= s_.size()) {
      *st = Error("a character");
      return -1;
    }
    const auto c = static_cast<uint8_t>(s_[pos_]);
    if (c == '\\') {
      if (pos_ + 1 >= s_.size()) {
        *st = Error("an escape");
        return -1;
      }
      const char e = s_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case 'n':
          return '\n';
        case 'r':
          return '\r';
        case 't':
          return '\t';
        case '\\':
        case '"':
        case '[':
        case ']':
        case '-':
        case '^':
        case '/':
        case '\'':
          return e;
        case 'x':
          return Hex(2, st);
        case 'u':
          return Hex(4, st);
        case 'U':
          return Hex(8, st);
        default:
          pos_ -= 2;
          *st = Error("a known escape (\\n \\r \\t \\\\ \\\" \\[ \\] \\- \\^ \\x \\u \\U)");
          return -1;
      }
    }
    const size_t len = c < 0x80         ? 1
                       : (c >> 5) == 6  ? 2
                       : (c >> 4) == 14 ? 3
                       : (c >> 3) == 30 ? 4
                                        : 0;
    if (len == 0 || pos_ + len > s_.size()) {
      *st = Error("valid UTF-8");
      return -1;
    }
    uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
    for (size_t i = 1; i < len; ++i) {
      const auto cc = static_cast<uint8_t>(s_[pos_ + i]);
      if ((cc & 0xC0) != 0x80) {
        *st = Error("valid UTF-8");
        return -1;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    pos_ += len;
    return cp;
  }
  int64_t Hex(int digits, absl::Status* st) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      const char c = pos_ < s_.size() ? s_[pos_] : '\0';
      int d = -1;
      if (c >= '0' && c <= '9') d = c - '0';
      if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') d = (c | 0x20) - 'a' + 10;
      if (d < 0) {
        *st = Error(absl::StrFormat("%d hex digits", digits));
        return -1;
      }
      v = v * 16 + static_cast<uint32_t>(d);
      ++pos_;
    }
    if (v > 0x10FFFF) {
      *st = Error("a code point <= 0x10FFFF");
      return -1;
    }
    return v;
  }

  absl::Status Alternates(int32_t rule, bool nested) {
    while (true) {
      Sequence seq;
      if (absl::Status st = SequenceOf(&seq, nested); !st.ok()) return st;
      b_.AddAlternative(rule, std::move(seq));
      if (pos_ >= s_.size() || s_[pos_] != '|') return absl::OkStatus();
      ++pos_;
      SkipSpace(true);
    }
  }

  absl::Status SequenceOf(Sequence* seq, bool nested) {
    size_t item_start = seq->size();
    bool have_item = false;
    while (true) {
      SkipSpace(nested);
      if (pos_ >= s_.size()) return absl::OkStatus();
      const char c = s_[pos_];
      absl::Status st;
      if (c == '"') {
        ++pos_;
        item_start = seq->size();
        std::string bytes;
        while (pos_ < s_.size() && s_[pos_] != '"') {
          const int64_t cp = Char(&st);
          if (cp < 0) return st;
          AppendUtf8(static_cast<uint32_t>(cp), &bytes);
        }
        if (pos_ >= s_.size()) return Error("a closing '\"'");
        ++pos_;
        // A literal is one item for a following quantifier.
        Sequence lit = b_.Literal(bytes);
        if (lit.size() == 1) {
          seq->push_back(lit[0]);
        } else {
          const int32_t r = b_.Fresh("lit");
          b_.AddAlternative(r, std::move(lit));
          seq->push_back(Symbol::Rule(r));
        }
        have_item = true;
      } else if (c == '[') {
        ++pos_;
        const bool negate = pos_ < s_.size() && s_[pos_] == '^';
        if (negate) ++pos_;
        Ranges ranges;
        while (pos_ < s_.size() && s_[pos_] != ']') {
          const int64_t lo = Char(&st);
          if (lo < 0) return st;
          int64_t hi = lo;
          if (pos_ + 1 < s_.size() && s_[pos_] == '-' && s_[pos_ + 1] != ']') {
            ++pos_;
            hi = Char(&st);
            if (hi < 0) return st;
            if (hi < lo) return Error("a range whose end is not below its start");
          }
          ranges.emplace_back(static_cast<uint32_t>(lo), static_cast<uint32_t>(hi));
        }
        if (pos_ >= s_.size()) return Error("a closing ']'");
        ++pos_;
        if (negate) ranges = Complement(std::move(ranges));
        if (ranges.empty()) return Error("a character class that matches something");
        item_start = seq->size();
        seq->push_back(b_.CodePoints(ranges));
        have_item = true;
      } else if (c == '.') {
        ++pos_;
        item_start = seq->size();
        seq->push_back(b_.CodePoints({{0, 0x10FFFF}}));
        have_item = true;
      } else if (c == '(') {
        ++pos_;
        SkipSpace(true);
        const int32_t r = b_.Fresh("group");
        if (absl::Status g = Alternates(r, true); !g.ok()) return g;
        SkipSpace(true);
        if (pos_ >= s_.size() || s_[pos_] != ')') return Error("')'");
        ++pos_;
        item_start = seq->size();
        seq->push_back(Symbol::Rule(r));
        have_item = true;
      } else if (IsNameChar(c)) {
        const size_t save = pos_;
        const std::string name = Name();
        // `name ::=` starts the next rule (only reachable when newlines are
        // skipped inside a group, which is a missing ')').
        size_t p = pos_;
        while (p < s_.size() && (s_[p] == ' ' || s_[p] == '\t')) ++p;
        if (s_.substr(p, 3) == "::=") {
          pos_ = save;
          return nested ? Error("')'") : absl::OkStatus();
        }
        item_start = seq->size();
        seq->push_back(Symbol::Rule(b_.Declare(name)));
        have_item = true;
      } else if (c == '*' || c == '+' || c == '?' || c == '{') {
        if (!have_item) return Error("an item before the repetition operator");
        int32_t min = 0, max = -1;
        ++pos_;
        if (c == '+') min = 1;
        if (c == '?') max = 1;
        if (c == '{') {
          if (absl::Status r = Braces(&min, &max); !r.ok()) return r;
        }
        Sequence item(seq->begin() + static_cast<ptrdiff_t>(item_start), seq->end());
        seq->resize(item_start);
        Sequence rep = b_.Repeat(item, min, max);
        seq->insert(seq->end(), rep.begin(), rep.end());
        have_item = false;  // x** is an error, as in llama.cpp
      } else {
        return absl::OkStatus();
      }
    }
  }

  // After '{': "m}", "m,}", "m,n}", ",n}".
  absl::Status Braces(int32_t* min, int32_t* max) {
    auto number = [&](int32_t* out) {
      const size_t start = pos_;
      int64_t v = 0;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        v = v * 10 + (s_[pos_++] - '0');
        if (v > kMaxRepeat) return false;
      }
      *out = static_cast<int32_t>(v);
      return pos_ > start;
    };
    SkipSpace(false);
    const bool has_min = number(min);
    if (!has_min) *min = 0;
    SkipSpace(false);
    if (pos_ < s_.size() && s_[pos_] == '}') {
      if (!has_min) return Error(absl::StrFormat("a repetition count <= %d", kMaxRepeat));
      ++pos_;
      *max = *min;
      return absl::OkStatus();
    }
    if (pos_ >= s_.size() || s_[pos_] != ',') return Error("',' or '}'");
    ++pos_;
    SkipSpace(false);
    if (!number(max)) *max = -1;
    SkipSpace(false);
    if (pos_ >= s_.size() || s_[pos_] != '}') {
      return Error(absl::StrFormat("'}' (repetition counts are at most %d)", kMaxRepeat));
    }
    ++pos_;
    if (*max >= 0 && *max < *min) return Error("a repetition maximum >= its minimum");
    return absl::OkStatus();
  }

  static constexpr int64_t kMaxRepeat = 10000;
  std::string_view s_;
  size_t pos_ = 0;
  GrammarBuilder b_;
  std::vector<bool> defined_;
};

}  // namespace

absl::StatusOr<Grammar> ParseGbnf(std::string_view text) { return GbnfParser(text).Parse(); }

}  // namespace restkv::engine::structured
