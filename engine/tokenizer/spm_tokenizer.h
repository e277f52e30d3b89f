// SentencePiece-style BPE (GGUF tokenizer.ggml.model = "llama"): Llama 1/2,
// Mistral, TinyLlama. Reproduces llama.cpp's llm_tokenizer_spm.
//
// Encoding one fragment of plain text (the caller has already prepended the
// phantom space when add_space_prefix asks for it):
//   1. every ' ' becomes U+2581 '▁';
//   2. the text is cut into UTF-8 characters (by lead byte, so invalid bytes
//      are single symbols);
//   3. repeatedly, of all adjacent pairs whose concatenation is a token, the
//      one whose token has the highest score is merged (ties: leftmost);
//   4. each remaining symbol is its token if it has one, else one <0xNN>
//      byte token per byte ("byte fallback"); if a byte has no token either,
//      the unknown token is used (llama.cpp would abort).
// Decoding turns '▁' back into ' ' and <0xNN> tokens into their byte.
//
// Ownership: borrows the token map and scores, which must outlive this
// object (Tokenizer owns them). Thread safety: immutable; Encode is const.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace restkv::engine {

inline constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 '▁'

class SpmTokenizer {
 public:
  using TokenMap = absl::flat_hash_map<std::string, int32_t>;

  // `scores` has one score per token id (may be shorter: missing scores are
  // 0). `unk_id` may be -1.
  SpmTokenizer(const TokenMap* token_to_id, const std::vector<float>* scores, int32_t unk_id);

  SpmTokenizer(const SpmTokenizer&) = delete;
  SpmTokenizer& operator=(const SpmTokenizer&) = delete;

  // Appends the ids of `text` (spaces not yet escaped) to `out`.
  void Encode(std::string_view text, std::vector<int32_t>* out) const;

  // Replaces every ' ' by '▁'.
  static std::string EscapeSpaces(std::string_view text);
  // Replaces every '▁' by ' '.
  static std::string UnescapeSpaces(std::string_view text);
  // The byte of a "<0xNN>" token text, or nullopt when it is not one.
  static std::optional<uint8_t> ParseByteToken(std::string_view token_text);

 private:
  float Score(int32_t id) const;
  void AppendByteTokens(std::string_view bytes, std::vector<int32_t>* out) const;

  const TokenMap* token_to_id_;
  const std::vector<float>* scores_;
  int32_t unk_id_;
  // byte -> id of "<0xNN>" (or of the 1-byte token), -1 when absent.
  int32_t byte_ids_[256];
};

}  // namespace restkv::engine
