// Pre-tokeniser for byte-level BPE: cuts text into words before BPE merges.
//
// BPE merges never cross a word boundary, so these boundaries decide token
// ids as much as the merges do. Each supported `tokenizer.ggml.pre` name maps
// to the list of regexes llama.cpp applies in sequence: the first splits the
// whole text, each later one splits every fragment left by the ones before,
// and text a regex does not match stays a fragment of its own. The splitters
// are written out by hand over code points (with ICU for Unicode general
// categories and White_Space) rather than run through a regex engine, for
// speed and because llama.cpp itself runs hand-written matchers for the
// GPT-2 and Llama 3 patterns whose corner cases we must reproduce:
//
//   kGpt2            names: gpt-2, phi-2, mpt, olmo, jais, ...
//                    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
//   kDigitsThenGpt2  names: smollm, starcoder, refact, command-r, ...
//                    \p{N}, then the GPT-2 regex
//   kLlama3          names: llama-bpe, llama3, llama-v3, dbrx, smaug-bpe, ...
//                    (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//                     ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   kQwen2           names: qwen2, stablelm2, megrez, deepseek-r1-qwen, ...
//                    the Llama 3 regex with \p{N} in place of \p{N}{1,3}
//   kDefault         names: default, or no name
//                    [\p{P}\$\+<=>\^~\|]+, then GPT-2, then \p{N}+, then [0-9][0-9][0-9]
//
// Input bytes that are not valid UTF-8 become U+FFFD first (llama.cpp does
// the same), so words are always valid UTF-8.
//
// Thread safety: immutable after construction; Split is const and safe to
// call from many threads.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace restkv::engine {

enum class PreTokenizerKind { kGpt2, kDigitsThenGpt2, kLlama3, kQwen2, kDefault };

// What a `tokenizer.ggml.pre` name implies for a byte-level BPE vocabulary.
struct PreTokenizerConfig {
  PreTokenizerKind kind = PreTokenizerKind::kDefault;
  // A word that is itself a token is emitted whole, without running merges
  // (Llama 3 family; tiktoken-converted merges cannot always rebuild it).
  bool ignore_merges = false;
  // llama.cpp's add_bos default for this family, used when the GGUF file has
  // no tokenizer.ggml.add_bos_token.
  bool default_add_bos = false;
};

// Returns the config for a pre-tokeniser name; "" means "default", as in
// llama.cpp. InvalidArgument naming `name` when it is not supported.
absl::StatusOr<PreTokenizerConfig> PreTokenizerConfigFromName(std::string_view name);

class PreTokenizer {
 public:
  explicit PreTokenizer(PreTokenizerKind kind) : kind_(kind) {}

  // Splits `text` into words whose concatenation is `text` with invalid UTF-8
  // replaced by U+FFFD. Returns no words for empty text.
  [[nodiscard]] std::vector<std::string> Split(std::string_view text) const;

  [[nodiscard]] PreTokenizerKind kind() const { return kind_; }

 private:
  PreTokenizerKind kind_;
};

}  // namespace restkv::engine
