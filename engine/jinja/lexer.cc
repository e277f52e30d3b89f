#include "engine/jinja/lexer.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace restkv::engine::jinja {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

absl::Status LexError(int line, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", std::string(what)));
}

class Lexer {
 public:
  Lexer(std::string source, const LexOptions& options)
      : src_(std::move(source)), options_(options) {}

  absl::StatusOr<std::vector<Token>> Run() {
    while (pos_ < src_.size()) {
      const size_t tag = FindTagStart(pos_);
      std::string text = src_.substr(pos_, tag - pos_);
      const bool line_starting = pos_ == 0 || src_[pos_ - 1] == '\n';
      const int text_line = line_;
      CountLines(pos_, tag);
      pos_ = tag;
      if (tag >= src_.size()) {
        EmitText(std::move(text), text_line);
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      const char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (sign == '-') {
        while (!text.empty() && IsSpace(text.back())) text.pop_back();
      } else if (sign != '+' && options_.lstrip_blocks && kind != '{') {
        const size_t line_start = text.rfind('\n');
        const size_t from = line_start == std::string::npos ? 0 : line_start + 1;
        if (line_start != std::string::npos || line_starting) {
          if (std::all_of(text.begin() + static_cast<std::ptrdiff_t>(from), text.end(),
                          [](char c) { return c == ' ' || c == '\t'; })) {
            text.resize(from);
          }
        }
      }
      EmitText(std::move(text), text_line);
      pos_ = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      absl::Status s = kind == '#' ? SkipComment() : LexTag(kind);
      if (!s.ok()) return s;
    }
    tokens_.push_back({Token::Kind::kEnd, "", line_});
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return src_.size();
  }

  void CountLines(size_t from, size_t to) {
    line_ += static_cast<int>(std::count(src_.begin() + static_cast<std::ptrdiff_t>(from),
                                         src_.begin() + static_cast<std::ptrdiff_t>(to), '\n'));
  }

  void Advance(size_t n) {
    CountLines(pos_, pos_ + n);
    pos_ += n;
  }

  void EmitText(std::string text, int line) {
    if (!text.empty()) tokens_.push_back({Token::Kind::kText, std::move(text), line});
  }

  // After a tag's closing delimiter: `-` strips the following whitespace,
  // trim_blocks drops one newline after block and comment tags.
  void AfterTagEnd(bool minus, bool plus, bool is_block) {
    if (minus) {
      size_t end = pos_;
      while (end < src_.size() && IsSpace(src_[end])) ++end;
      Advance(end - pos_);
    } else if (!plus && is_block && options_.trim_blocks && pos_ < src_.size() &&
               src_[pos_] == '\n') {
      Advance(1);
    }
  }

  absl::Status SkipComment() {
    const int start_line = line_;
    const size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) return LexError(start_line, "unterminated comment");
    const bool minus = end > pos_ && src_[end - 1] == '-';
    const bool plus = end > pos_ && src_[end - 1] == '+';
    Advance(end + 2 - pos_);
    AfterTagEnd(minus, plus, /*is_block=*/true);
    return absl::OkStatus();
  }

  absl::Status LexTag(char kind) {
    const bool is_block = kind == '%';
    const char close = is_block ? '%' : '}';
    tokens_.push_back({is_block ? Token::Kind::kBlockBegin : Token::Kind::kVarBegin, "", line_});
    const size_t first_token = tokens_.size();
    int depth = 0;
    while (true) {
      while (pos_ < src_.size() && IsSpace(src_[pos_])) Advance(1);
      if (pos_ >= src_.size()) return LexError(line_, "unterminated tag");
      // The closing delimiter, with an optional -/+ before it.
      if (depth == 0) {
        size_t p = pos_;
        bool minus = false, plus = false;
        if (src_[p] == '-' || src_[p] == '+') {
          minus = src_[p] == '-';
          plus = src_[p] == '+';
          ++p;
        }
        if (p + 1 < src_.size() && src_[p] == close && src_[p + 1] == '}') {
          Advance(p + 2 - pos_);
          tokens_.push_back({is_block ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd, "", line_});
          AfterTagEnd(minus, plus, is_block);
          if (is_block && tokens_.size() == first_token + 2 &&
              tokens_[first_token].kind == Token::Kind::kName &&
              tokens_[first_token].text == "raw") {
            return LexRaw();
          }
          return absl::OkStatus();
        }
      }
      const char c = src_[pos_];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t end = pos_;
        while (end < src_.size() &&
               (std::isalnum(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) {
          ++end;
        }
        tokens_.push_back({Token::Kind::kName, src_.substr(pos_, end - pos_), line_});
        pos_ = end;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t end = pos_;
        while (end < src_.size() &&
               (std::isdigit(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) {
          ++end;
        }
        bool is_float = false;
        if (end + 1 < src_.size() && src_[end] == '.' &&
            std::isdigit(static_cast<unsigned char>(src_[end + 1]))) {
          is_float = true;
          ++end;
          while (end < src_.size() && std::isdigit(static_cast<unsigned char>(src_[end]))) ++end;
        }
        if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
          size_t e = end + 1;
          if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
          if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
            is_float = true;
            end = e;
            while (end < src_.size() && std::isdigit(static_cast<unsigned char>(src_[end]))) ++end;
          }
        }
        std::string digits = src_.substr(pos_, end - pos_);
        digits.erase(std::remove(digits.begin(), digits.end(), '_'), digits.end());
        tokens_.push_back({is_float ? Token::Kind::kFloat : Token::Kind::kInt, digits, line_});
        pos_ = end;
      } else if (c == '"' || c == '\'') {
        absl::Status s = LexString(c);
        if (!s.ok()) return s;
      } else {
        static constexpr std::string_view kTwo[] = {"==", "!=", "<=", ">=", "//", "**"};
        std::string op;
        for (std::string_view two : kTwo) {
          if (src_.compare(pos_, 2, two) == 0) op = std::string(two);
        }
        if (op.empty()) {
          if (std::string_view("<>+-*/%~|.,:()[]{}=").find(c) == std::string_view::npos) {
            return LexError(line_, absl::StrCat("unexpected character '", std::string(1, c), "'"));
          }
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        tokens_.push_back({Token::Kind::kOperator, op, line_});
        pos_ += op.size();
      }
    }
  }

  absl::Status LexString(char quote) {
    const int start_line = line_;
    std::string out;
    size_t p = pos_ + 1;
    while (true) {
      if (p >= src_.size()) return LexError(start_line, "unterminated string literal");
      const char c = src_[p];
      if (c == quote) break;
      if (c == '\\' && p + 1 < src_.size()) {
        const char e = src_[p + 1];
        switch (e) {
          case 'n':
            out += '\n';
            break;
          case 't':
            out += '\t';
            break;
          case 'r':
            out += '\r';
            break;
          case '\\':
          case '\'':
          case '"':
            out += e;
            break;
          case '\n':
            break;
          default:
            out += '\\';
            out += e;
        }
        p += 2;
        continue;
      }
      out += c;
      ++p;
    }
    Advance(p + 1 - pos_);
    tokens_.push_back({Token::Kind::kString, std::move(out), start_line});
    return absl::OkStatus();
  }

  // The text up to {% endraw %}, as one text token (the raw/endraw tags
  // themselves are removed from the token stream).
  absl::Status LexRaw() {
    tokens_.resize(tokens_.size() - 3);  // {% raw %}
    const int start_line = line_;
    size_t search = pos_;
    while (true) {
      const size_t open = src_.find("{%", search);
      if (open == std::string::npos) return LexError(start_line, "unterminated raw block");
      size_t p = open + 2;
      const bool minus = p < src_.size() && src_[p] == '-';
      if (minus || (p < src_.size() && src_[p] == '+')) ++p;
      while (p < src_.size() && IsSpace(src_[p])) ++p;
      if (src_.compare(p, 6, "endraw") != 0) {
        search = open + 2;
        continue;
      }
      p += 6;
      while (p < src_.size() && IsSpace(src_[p])) ++p;
      bool end_minus = false, end_plus = false;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) {
        end_minus = src_[p] == '-';
        end_plus = src_[p] == '+';
        ++p;
      }
      if (src_.compare(p, 2, "%}") != 0) return LexError(line_, "malformed endraw tag");
      std::string text = src_.substr(pos_, open - pos_);
      if (minus) {
        while (!text.empty() && IsSpace(text.back())) text.pop_back();
      }
      EmitText(std::move(text), start_line);
      Advance(p + 2 - pos_);
      AfterTagEnd(end_minus, end_plus, /*is_block=*/true);
      return absl::OkStatus();
    }
  }

  std::string src_;
  LexOptions options_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Lex(std::string_view source, const LexOptions& options) {
  std::string src = absl::StrReplaceAll(std::string(source), {{"\r\n", "\n"}});
  if (!src.empty() && src.back() == '\n') src.pop_back();
  return Lexer(std::move(src), options).Run();
}

}  // namespace restkv::engine::jinja
