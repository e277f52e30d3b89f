#include "engine/tokenizer/bpe_tokenizer.h"

#include <array>
#include <queue>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/utf8.h"

namespace restkv::engine {
namespace {

// GPT-2's byte-to-unicode table: printable Latin-1 bytes map to themselves,
// the other 68 bytes to U+0100.. in byte order, so every byte has a visible
// stand-in and no stand-in is whitespace.
struct ByteTables {
  std::array<uint32_t, 256> byte_to_cpt;
  std::array<std::string, 256> byte_to_utf8;
  std::array<int16_t, 512> cpt_to_byte;  // -1: not a stand-in

  ByteTables() {
    cpt_to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      byte_to_cpt[b] = printable ? static_cast<uint32_t>(b) : next++;
      AppendUtf8(byte_to_cpt[b], &byte_to_utf8[b]);
      cpt_to_byte[byte_to_cpt[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteTables& Tables() {
  static const ByteTables* tables = new ByteTables();
  return *tables;
}

// One symbol of the word being merged: bytes [start, start + len) of the
// encoded word, in a doubly linked list. len == 0 marks a symbol merged away.
struct Symbol {
  size_t start;
  size_t len;
  int prev;
  int next;
};

struct Bigram {
  int left;
  int right;
  int32_t rank;
  size_t left_len;  // lengths when queued: a change means the entry is stale
  size_t right_len;
};

// Lowest rank first, then leftmost.
struct BigramLater {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Create(
    const TokenMap* token_to_id, const std::vector<std::string>& merges, PreTokenizerConfig pre) {
  std::unique_ptr<BpeTokenizer> tok(new BpeTokenizer(token_to_id, pre));
  tok->ranks_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& m = merges[i];
    // Split at the first space after the first byte, as llama.cpp does.
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (space == std::string::npos || space + 1 >= m.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("BPE merge #", i, " '", m, "' is not of the form 'left right'"));
    }
    tok->ranks_.emplace(m, static_cast<int32_t>(i));
  }
  return tok;
}

std::string BpeTokenizer::EncodeBytes(std::string_view bytes) {
  const ByteTables& t = Tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) out += t.byte_to_utf8[static_cast<uint8_t>(c)];
  return out;
}

std::string BpeTokenizer::DecodeTokenText(std::string_view token_text) {
  const ByteTables& t = Tables();
  std::string out;
  out.reserve(token_text.size());
  for (const uint32_t cpt : DecodeUtf8Lenient(token_text)) {
    if (cpt < t.cpt_to_byte.size() && t.cpt_to_byte[cpt] >= 0) {
      out.push_back(static_cast<char>(t.cpt_to_byte[cpt]));
    } else {
      AppendUtf8(cpt, &out);
    }
  }
  return out;
}

int32_t BpeTokenizer::Rank(absl::string_view left, absl::string_view right,
                           std::string* scratch) const {
  scratch->assign(left.data(), left.size());
  scratch->push_back(' ');
  scratch->append(right.data(), right.size());
  const auto it = ranks_.find(*scratch);
  return it == ranks_.end() ? -1 : it->second;
}

void BpeTokenizer::Encode(std::string_view text, std::vector<int32_t>* out) const {
  for (const std::string& word : pre_.Split(text)) EncodeWord(EncodeBytes(word), out);
}

void BpeTokenizer::EncodeWord(const std::string& word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (pre_config_.ignore_merges) {
    const auto it = token_to_id_->find(absl::string_view(word));
    if (it != token_to_id_->end()) {
      out->push_back(it->second);
      return;
    }
  }
  // One symbol per UTF-8 character of the encoded word.
  std::vector<Symbol> symbols;
  for (size_t pos = 0; pos < word.size();) {
    const size_t len =
        std::min(word.size() - pos, Utf8LengthFromLead(static_cast<uint8_t>(word[pos])));
    const int idx = static_cast<int>(symbols.size());
    symbols.push_back({pos, len, idx - 1, pos + len == word.size() ? -1 : idx + 1});
    pos += len;
  }
  auto text_of = [&](const Symbol& s) { return absl::string_view(word).substr(s.start, s.len); };

  std::priority_queue<Bigram, std::vector<Bigram>, BigramLater> queue;
  std::string scratch;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const int32_t rank = Rank(text_of(symbols[left]), text_of(symbols[right]), &scratch);
    if (rank < 0) return;
    queue.push({left, right, rank, symbols[left].len, symbols[right].len});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = symbols[b.left];
    Symbol& r = symbols[b.right];
    if (l.len == 0 || r.len == 0 || l.len != b.left_len || r.len != b.right_len) continue;
    l.len += r.len;  // r's bytes directly follow l's
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int i = 0; i != -1; i = symbols[i].next) {
    const absl::string_view piece = text_of(symbols[i]);
    const auto it = token_to_id_->find(piece);
    if (it != token_to_id_->end()) {
      out->push_back(it->second);
      continue;
    }
    // NOTE(restkv): llama.cpp looks up each *byte* of the encoded symbol
    // here (not each encoded character), so multi-byte stand-ins never match
    // and are dropped. Only reachable with a vocabulary that lacks some of
    // the 256 byte stand-ins; kept identical for token-exact parity.
    for (const char c : piece) {
      const auto byte_it = token_to_id_->find(absl::string_view(&c, 1));
      if (byte_it != token_to_id_->end()) out->push_back(byte_it->second);
    }
  }
}

}  // namespace restkv::engine
