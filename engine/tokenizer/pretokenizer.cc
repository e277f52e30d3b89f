#include "engine/tokenizer/pretokenizer.h"

#include <unicode/uchar.h>

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/utf8.h"

namespace restkv::engine {
namespace {

// Fragments are spans of code points [begin, end) of one decoded text; a
// splitter turns each fragment into consecutive pieces, and the list of piece
// lengths is the input of the next splitter (llama.cpp's "offsets").
using Lengths = std::vector<size_t>;

// Unicode properties of one code point, looked up once per Split.
enum : uint8_t { kLetter = 1, kNumber = 2, kSpace = 4, kPunctuation = 8 };

uint8_t Classify(uint32_t cpt) {
  const auto c = static_cast<UChar32>(cpt);
  const uint32_t gc = U_GET_GC_MASK(c);
  uint8_t flags = 0;
  if (gc & U_GC_L_MASK) flags |= kLetter;
  if (gc & U_GC_N_MASK) flags |= kNumber;
  if (gc & U_GC_P_MASK) flags |= kPunctuation;
  if (u_isUWhiteSpace(c)) flags |= kSpace;
  return flags;
}

// Views one fragment of the code point array; positions outside it read as
// "no character", which is how the regexes see the end of a fragment.
class Fragment {
 public:
  Fragment(const std::vector<uint32_t>& cpts, const std::vector<uint8_t>& flags, size_t begin,
           size_t end, Lengths* out)
      : cpts_(cpts), flags_(flags), begin_(begin), end_(end), prev_end_(begin), out_(out) {}

  bool In(size_t pos) const { return pos >= begin_ && pos < end_; }
  uint32_t At(size_t pos) const { return cpts_[pos]; }
  bool Has(size_t pos, uint8_t flag) const { return In(pos) && (flags_[pos] & flag) != 0; }
  bool Letter(size_t pos) const { return Has(pos, kLetter); }
  bool Number(size_t pos) const { return Has(pos, kNumber); }
  bool Space(size_t pos) const { return Has(pos, kSpace); }
  // [^\s\p{L}\p{N}]: any character that is neither whitespace, letter nor number.
  bool Other(size_t pos) const {
    return In(pos) && (flags_[pos] & (kSpace | kLetter | kNumber)) == 0;
  }
  bool Is(size_t pos, uint32_t c) const { return In(pos) && cpts_[pos] == c; }
  bool IsNewline(size_t pos) const { return Is(pos, '\r') || Is(pos, '\n'); }

  // Ends the current piece at `pos` (no-op for an empty piece).
  void Emit(size_t pos) {
    if (pos > prev_end_) out_->push_back(pos - prev_end_);
    prev_end_ = pos;
  }

  size_t begin() const { return begin_; }
  size_t end() const { return end_; }

 private:
  const std::vector<uint32_t>& cpts_;
  const std::vector<uint8_t>& flags_;
  size_t begin_, end_, prev_end_;
  Lengths* out_;
};

// 's|'t|'re|'ve|'m|'ll|'d at `pos`; returns the match length or 0.
// `fold_case` gives Llama 3's (?i:...) form.
size_t MatchContraction(const Fragment& f, size_t pos, bool fold_case) {
  if (!f.Is(pos, '\'') || !f.In(pos + 1)) return 0;
  auto lower = [&](size_t p) -> uint32_t {
    if (!f.In(p)) return 0;
    const uint32_t c = f.At(p);
    return (fold_case && c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
  };
  const uint32_t c1 = lower(pos + 1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  const uint32_t c2 = lower(pos + 2);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

// Whitespace run at `pos`: \s+(?!\S) leaves the last space for the next word
// when a non-space follows inside the fragment, else \s+ takes the run.
size_t WhitespaceEnd(const Fragment& f, size_t pos) {
  size_t n = 0;
  while (f.Space(pos + n)) ++n;
  if (n > 1 && f.In(pos + n)) return pos + n - 1;
  if (n > 0) return pos + n;
  return pos + 1;  // matches nothing: the character stands alone
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void SplitGpt2(Fragment& f) {
  size_t pos = f.begin();
  while (pos < f.end()) {
    if (const size_t n = MatchContraction(f, pos, /*fold_case=*/false)) {
      pos += n;
      f.Emit(pos);
      continue;
    }
    const size_t look = f.Is(pos, ' ') ? pos + 1 : pos;
    bool (Fragment::*cls)(size_t) const = nullptr;
    if (f.Letter(look)) {
      cls = &Fragment::Letter;
    } else if (f.Number(look)) {
      cls = &Fragment::Number;
    } else if (f.Other(look)) {
      cls = &Fragment::Other;
    }
    if (cls != nullptr) {
      pos = look;
      while ((f.*cls)(pos)) ++pos;
      f.Emit(pos);
      continue;
    }
    pos = WhitespaceEnd(f, pos);
    f.Emit(pos);
  }
}

// Llama 3 / Qwen2:
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
void SplitLlama3(Fragment& f, size_t max_digits) {
  size_t pos = f.begin();
  while (pos < f.end()) {
    if (const size_t n = MatchContraction(f, pos, /*fold_case=*/true)) {
      pos += n;
      f.Emit(pos);
      continue;
    }
    if (!f.IsNewline(pos) && !f.Number(pos) && (f.Letter(pos) || f.Letter(pos + 1))) {
      ++pos;  // the optional leading non-letter, or the first letter
      while (f.Letter(pos)) ++pos;
      f.Emit(pos);
      continue;
    }
    if (f.Number(pos)) {
      size_t group_begin = pos;
      while (f.Number(pos)) {
        ++pos;
        if (pos - group_begin >= max_digits) {
          f.Emit(pos);
          group_begin = pos;
        }
      }
      f.Emit(pos);
      continue;
    }
    const size_t look = f.Is(pos, ' ') ? pos + 1 : pos;
    if (f.Other(look)) {
      pos = look;
      while (f.Other(pos)) ++pos;
      while (f.IsNewline(pos)) ++pos;
      f.Emit(pos);
      continue;
    }
    // \s*[\r\n]+ ends after the last newline of the whitespace run.
    size_t n = 0, newline_end = 0;
    while (f.Space(pos + n)) {
      if (f.IsNewline(pos + n)) newline_end = pos + n + 1;
      ++n;
    }
    pos = newline_end > 0 ? newline_end : WhitespaceEnd(f, pos);
    f.Emit(pos);
  }
}

// Generic leftmost-match splitter: `match(f, pos)` returns the length of the
// match at pos (0 for none); text between matches becomes pieces of its own.
template <typename Match>
void SplitByMatches(Fragment& f, Match match) {
  size_t pos = f.begin();
  while (pos < f.end()) {
    const size_t n = match(f, pos);
    if (n == 0) {
      ++pos;
      continue;
    }
    f.Emit(pos);
    pos += n;
    f.Emit(pos);
  }
  f.Emit(f.end());
}

// \p{N}: every number character alone.
size_t MatchOneNumber(const Fragment& f, size_t pos) { return f.Number(pos) ? 1 : 0; }

// \p{N}+
size_t MatchNumberRun(const Fragment& f, size_t pos) {
  size_t n = 0;
  while (f.Number(pos + n)) ++n;
  return n;
}

// [\p{P}\$\+<=>\^~\|]+
size_t MatchPunctuationRun(const Fragment& f, size_t pos) {
  auto is_member = [&](size_t p) {
    if (!f.In(p)) return false;
    const uint32_t c = f.At(p);
    switch (c) {
      case '$':
      case '+':
      case '<':
      case '=':
      case '>':
      case '^':
      case '~':
      case '|':
        return true;
      default:
        return f.Has(p, kPunctuation) && !f.Has(p, kSpace);
    }
  };
  size_t n = 0;
  while (is_member(pos + n)) ++n;
  return n;
}

// [0-9][0-9][0-9]
size_t MatchThreeAsciiDigits(const Fragment& f, size_t pos) {
  for (size_t i = 0; i < 3; ++i) {
    if (!f.In(pos + i) || f.At(pos + i) < '0' || f.At(pos + i) > '9') return 0;
  }
  return 3;
}

// Runs `split` over every fragment of `lengths` and returns the new lengths.
template <typename Split>
Lengths Apply(const std::vector<uint32_t>& cpts, const std::vector<uint8_t>& flags,
              const Lengths& lengths, Split split) {
  Lengths out;
  out.reserve(lengths.size() * 2);
  size_t begin = 0;
  for (const size_t len : lengths) {
    Fragment f(cpts, flags, begin, begin + len, &out);
    split(f);
    begin += len;
  }
  return out;
}

}  // namespace

absl::StatusOr<PreTokenizerConfig> PreTokenizerConfigFromName(std::string_view name) {
  using K = PreTokenizerKind;
  struct Entry {
    std::string_view name;
    PreTokenizerConfig config;
  };
  // Names and families as llama.cpp's llama-vocab.cpp groups them.
  static constexpr Entry kEntries[] = {
      {"", {K::kDefault, false, false}},
      {"default", {K::kDefault, false, false}},
      {"gpt-2", {K::kGpt2, false, false}},
      {"phi-2", {K::kGpt2, false, false}},
      {"jina-es", {K::kGpt2, false, false}},
      {"jina-de", {K::kGpt2, false, false}},
      {"gigachat", {K::kGpt2, false, false}},
      {"jina-v2-es", {K::kGpt2, false, false}},
      {"jina-v2-de", {K::kGpt2, false, false}},
      {"a.x-4.0", {K::kGpt2, false, false}},
      {"mellum", {K::kGpt2, false, false}},
      {"modern-bert", {K::kGpt2, false, false}},
      {"mpt", {K::kGpt2, false, false}},
      {"olmo", {K::kGpt2, false, false}},
      {"jais", {K::kGpt2, false, false}},
      {"trillion", {K::kGpt2, false, false}},
      {"granite-docling", {K::kGpt2, false, false}},
      {"exaone4", {K::kGpt2, false, false}},
      {"smollm", {K::kDigitsThenGpt2, false, false}},
      {"starcoder", {K::kDigitsThenGpt2, false, false}},
      {"refact", {K::kDigitsThenGpt2, false, false}},
      {"command-r", {K::kDigitsThenGpt2, false, false}},
      {"codeshell", {K::kDigitsThenGpt2, false, false}},
      {"exaone", {K::kDigitsThenGpt2, false, false}},
      {"minerva-7b", {K::kDigitsThenGpt2, false, false}},
      {"mellum2", {K::kDigitsThenGpt2, false, false}},
      {"llama3", {K::kLlama3, true, true}},
      {"llama-v3", {K::kLlama3, true, true}},
      {"llama-bpe", {K::kLlama3, true, true}},
      {"falcon3", {K::kLlama3, true, true}},
      {"falcon-h1", {K::kLlama3, true, true}},
      {"pixtral", {K::kLlama3, true, true}},
      {"midm-2.0", {K::kLlama3, true, true}},
      {"lfm2", {K::kLlama3, true, true}},
      {"dbrx", {K::kLlama3, false, false}},
      {"smaug-bpe", {K::kLlama3, false, false}},
      {"qwen2", {K::kQwen2, false, false}},
      {"deepseek-r1-qwen", {K::kQwen2, false, false}},
      {"kormo", {K::kQwen2, false, false}},
      {"megrez", {K::kQwen2, false, false}},
      {"stablelm2", {K::kQwen2, false, false}},
      {"hunyuan", {K::kQwen2, false, false}},
      {"solar-open", {K::kQwen2, false, false}},
  };
  for (const Entry& e : kEntries) {
    if (e.name == name) return e.config;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported pre-tokenizer type (tokenizer.ggml.pre) '",
      absl::string_view(name.data(), name.size()),
      "'; supported families: gpt-2, smollm/starcoder, llama-bpe/llama3, qwen2, default"));
}

std::vector<std::string> PreTokenizer::Split(std::string_view text) const {
  const std::vector<uint32_t> cpts = DecodeUtf8Lenient(text);
  if (cpts.empty()) return {};
  std::vector<uint8_t> flags(cpts.size());
  for (size_t i = 0; i < cpts.size(); ++i) flags[i] = Classify(cpts[i]);
  Lengths lengths = {cpts.size()};
  auto by = [](auto match) { return [match](Fragment& f) { SplitByMatches(f, match); }; };
  switch (kind_) {
    case PreTokenizerKind::kGpt2:
      lengths = Apply(cpts, flags, lengths, SplitGpt2);
      break;
    case PreTokenizerKind::kDigitsThenGpt2:
      lengths = Apply(cpts, flags, lengths, by(MatchOneNumber));
      lengths = Apply(cpts, flags, lengths, SplitGpt2);
      break;
    case PreTokenizerKind::kLlama3:
      lengths = Apply(cpts, flags, lengths, [](Fragment& f) { SplitLlama3(f, 3); });
      break;
    case PreTokenizerKind::kQwen2:
      lengths = Apply(cpts, flags, lengths, [](Fragment& f) { SplitLlama3(f, 1); });
      break;
    case PreTokenizerKind::kDefault:
      lengths = Apply(cpts, flags, lengths, by(MatchPunctuationRun));
      lengths = Apply(cpts, flags, lengths, SplitGpt2);
      lengths = Apply(cpts, flags, lengths, by(MatchNumberRun));
      lengths = Apply(cpts, flags, lengths, by(MatchThreeAsciiDigits));
      break;
  }
  std::vector<std::string> words;
  words.reserve(lengths.size());
  size_t begin = 0;
  for (const size_t len : lengths) {
    std::string& word = words.emplace_back();
    for (size_t i = begin; i < begin + len; ++i) AppendUtf8(cpts[i], &word);
    begin += len;
  }
  return words;
}

}  // namespace restkv::engine
