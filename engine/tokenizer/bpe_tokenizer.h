// Byte-level BPE (GGUF tokenizer.ggml.model = "gpt2"): GPT-2, SmolLM2,
// Llama 3, Qwen2.
//
// Encoding one fragment of plain text (special tokens were split out before):
//   1. the pre-tokeniser cuts it into words (see pretokenizer.h);
//   2. each byte of a word is mapped to a printable code point with GPT-2's
//      byte-to-unicode table (space -> 'Ġ', newline -> 'Ċ', ...), the alphabet
//      the vocabulary and merges are written in;
//   3. starting from single characters, the adjacent pair with the lowest
//      merge rank is merged until no pair has a rank (ties: leftmost first);
//   4. each resulting symbol is looked up in the vocabulary. A symbol missing
//      from the vocabulary falls back to one lookup per byte of its encoded
//      text, and bytes without a token are dropped, as llama.cpp does.
// Decoding maps the code points of a token's text back to bytes.
//
// Ownership: borrows the token-to-id map, which must outlive this object
// (Tokenizer owns both). Thread safety: immutable after Create; Encode is
// const and safe to call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/tokenizer/pretokenizer.h"

namespace restkv::engine {

class BpeTokenizer {
 public:
  using TokenMap = absl::flat_hash_map<std::string, int32_t>;

  // `merges` are "left right" strings in rank order (rank = index).
  // InvalidArgument when a merge has no separating space or an empty side.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Create(
      const TokenMap* token_to_id, const std::vector<std::string>& merges, PreTokenizerConfig pre);

  BpeTokenizer(const BpeTokenizer&) = delete;
  BpeTokenizer& operator=(const BpeTokenizer&) = delete;

  // Appends the ids of plain text `text` to `out`.
  void Encode(std::string_view text, std::vector<int32_t>* out) const;

  // The raw bytes a token's (byte-encoded) text stands for. Code points
  // outside GPT-2's byte alphabet are copied through as UTF-8.
  static std::string DecodeTokenText(std::string_view token_text);

  // The byte-encoded form of raw bytes (step 2 above); exposed for tests.
  static std::string EncodeBytes(std::string_view bytes);

 private:
  BpeTokenizer(const TokenMap* token_to_id, PreTokenizerConfig pre)
      : token_to_id_(token_to_id), pre_config_(pre), pre_(pre.kind) {}

  void EncodeWord(const std::string& encoded_word, std::vector<int32_t>* out) const;
  int32_t Rank(absl::string_view left, absl::string_view right, std::string* scratch) const;

  const TokenMap* token_to_id_;
  PreTokenizerConfig pre_config_;
  PreTokenizer pre_;
  // "left right" -> rank; the first occurrence of a duplicate merge wins.
  absl::flat_hash_map<std::string, int32_t> ranks_;
};

}  // namespace restkv::engine
