#include "engine/tokenizer/spm_tokenizer.h"

#include <algorithm>
#include <queue>

#include "absl/strings/str_replace.h"
#include "engine/tokenizer/utf8.h"

namespace restkv::engine {
namespace {

struct Symbol {
  size_t start;
  size_t len;  // 0: merged into its left neighbour
  int prev;
  int next;
};

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;  // bytes of the merged text; a mismatch means the entry is stale
};

// Highest score first, then leftmost.
struct BigramLater {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

SpmTokenizer::SpmTokenizer(const TokenMap* token_to_id, const std::vector<float>* scores,
                           int32_t unk_id)
    : token_to_id_(token_to_id), scores_(scores), unk_id_(unk_id) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
    auto it = token_to_id_->find(absl::string_view(name, 6));
    if (it == token_to_id_->end()) {
      const char raw = static_cast<char>(b);
      it = token_to_id_->find(absl::string_view(&raw, 1));
    }
    byte_ids_[b] = it == token_to_id_->end() ? -1 : it->second;
  }
}

std::string SpmTokenizer::EscapeSpaces(std::string_view text) {
  return absl::StrReplaceAll(absl::string_view(text.data(), text.size()),
                             {{" ", absl::string_view(kSpmSpace.data(), kSpmSpace.size())}});
}

std::string SpmTokenizer::UnescapeSpaces(std::string_view text) {
  return absl::StrReplaceAll(absl::string_view(text.data(), text.size()),
                             {{absl::string_view(kSpmSpace.data(), kSpmSpace.size()), " "}});
}

std::optional<uint8_t> SpmTokenizer::ParseByteToken(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(t[3]), lo = hex(t[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<uint8_t>(hi * 16 + lo);
}

float SpmTokenizer::Score(int32_t id) const {
  return static_cast<size_t>(id) < scores_->size() ? (*scores_)[id] : 0.0f;
}

void SpmTokenizer::AppendByteTokens(std::string_view bytes, std::vector<int32_t>* out) const {
  for (const char c : bytes) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id >= 0) {
      out->push_back(id);
    } else if (unk_id_ >= 0) {
      out->push_back(unk_id_);
    }
  }
}

void SpmTokenizer::Encode(std::string_view raw_text, std::vector<int32_t>* out) const {
  const std::string text = EscapeSpaces(raw_text);
  if (text.empty()) return;
  std::vector<Symbol> symbols;
  for (size_t pos = 0; pos < text.size();) {
    const size_t len =
        std::min(text.size() - pos, Utf8LengthFromLead(static_cast<uint8_t>(text[pos])));
    const int idx = static_cast<int>(symbols.size());
    symbols.push_back({pos, len, idx - 1, pos + len == text.size() ? -1 : idx + 1});
    pos += len;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramLater> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t size = symbols[left].len + symbols[right].len;
    const auto it = token_to_id_->find(absl::string_view(text).substr(symbols[left].start, size));
    if (it == token_to_id_->end()) return;
    queue.push({left, right, Score(it->second), size});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = symbols[b.left];
    Symbol& r = symbols[b.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.size) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  // A merged symbol is always a token (pairs are queued only then), so only
  // single characters can miss the vocabulary and need byte fallback.
  for (int i = 0; i != -1; i = symbols[i].next) {
    const absl::string_view piece =
        absl::string_view(text).substr(symbols[i].start, symbols[i].len);
    const auto it = token_to_id_->find(piece);
    if (it != token_to_id_->end()) {
      out->push_back(it->second);
    } else {
      AppendByteTokens(std::string_view(piece.data(), piece.size()), out);
    }
  }
}

}  // namespace restkv::engine
