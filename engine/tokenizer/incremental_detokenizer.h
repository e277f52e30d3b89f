// IncrementalDetokenizer: turns a stream of token ids into text pieces that
// are always valid UTF-8, for streaming responses.
//
// A token's bytes can end in the middle of a character (byte-level BPE and
// SPM byte-fallback tokens split emoji and CJK characters across tokens).
// Push() appends the token's bytes to a small pending buffer, emits every
// complete character and holds back only a trailing, still-completable
// prefix of a character (at most 3 bytes). Bytes that no continuation can
// make valid are emitted as U+FFFD at once instead of being held. Flush()
// emits what is held back, as U+FFFD.
//
//   ids     [F0 9F]  [98]   [80 'a']
//   Push    ""       ""     "😀a"        concatenation == Tokenizer::Decode
//
// Leading space: with StripLeadingSpace::kLikeDecode (the default), the first
// token's piece loses one leading space when the vocabulary has
// add_space_prefix, exactly as Tokenizer::Decode and llama_detokenize do, so
// the concatenated output equals Decode(ids) whenever that is valid UTF-8.
// Use kKeep when the stream continues a prompt (generated text after a
// prompt keeps its space: "Hello" + " world").
//
// Special tokens: with render_special, control tokens give their text; with
// spaces_between_special too, a space separates such a token from the text
// before and after it within this stream ("a" <|x|> <|y|> "b" -> "a <|x|> <|y|> b"),
// as HF tokenizers' spaces_between_special_tokens does. Without render_special
// they give nothing and no space is added.
//
// Thread safety: not thread-safe; one instance per stream. Borrows the
// Tokenizer, which must outlive it.
#pragma once

#include <cstdint>
#include <string>

#include "engine/tokenizer/tokenizer.h"

namespace restkv::engine {

class IncrementalDetokenizer {
 public:
  enum class StripLeadingSpace { kLikeDecode, kKeep };

  explicit IncrementalDetokenizer(const Tokenizer& tok)
      : IncrementalDetokenizer(tok, StripLeadingSpace::kLikeDecode) {}
  IncrementalDetokenizer(const Tokenizer& tok, StripLeadingSpace strip, bool render_special = false,
                         bool spaces_between_special = false);

  // Returns the text that became complete with token `id` (may be empty).
  std::string Push(int32_t id);

  // Returns whatever is held back, invalid bytes replaced by U+FFFD, and
  // empties the buffer. The stream may continue afterwards.
  std::string Flush();

  // Bytes currently held back (0..3).
  [[nodiscard]] size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer& tok_;
  bool render_special_;
  bool spaces_between_special_;
  bool strip_next_space_;
  bool emitted_any_ = false;  // some piece (of any kind) came before
  bool last_was_special_ = false;
  std::string pending_;
};

}  // namespace restkv::engine
