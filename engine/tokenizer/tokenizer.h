// Tokenizer: text <-> token ids for a GGUF model, token-exact with llama.cpp.
//
// Built from TokenizerData (the tokenizer.* metadata of a GGUF file, see
// tokenizer_gguf.h) and dispatching to one of two algorithms:
//   "gpt2"  byte-level BPE with a pre-tokeniser     (bpe_tokenizer.h)
//   "llama" SentencePiece-style BPE with scores     (spm_tokenizer.h)
//
// Encode(text, add_special, parse_special):
//   1. special tokens are cut out of the text first, longest token text
//      first, each one at every occurrence. Control and unknown tokens
//      (e.g. "<|im_start|>", "<s>") are cut out only when parse_special;
//      user-defined tokens always are, as in llama.cpp and HF tokenizers.
//   2. every remaining plain-text fragment is encoded on its own. For
//      "llama", a fragment that starts the text or follows a special token
//      gets a phantom leading space when add_space_prefix.
//   3. add_special puts BOS in front when add_bos and EOS at the end when
//      add_eos.
// Decode / TokenToPiece give raw bytes, which may be invalid UTF-8 when ids
// cut a character (see incremental_detokenizer.h for streaming). Decode
// follows llama_detokenize(remove_special=false): pieces are concatenated
// and, when add_space_prefix, one leading space is dropped from the first
// token's piece. llama.cpp's optional "clean up tokenization spaces" pass
// (" ." -> ".", on for some BPE vocabularies) is deliberately not applied,
// so that Decode(Encode(s)) == s.
//
// Token attributes follow llama.cpp: the GGUF token type of each token, plus
// "control" forced on tokens whose text marks an end of generation
// (<|im_end|>, <|eot_id|>, <|endoftext|>, </s>, ...).
//
// Thread safety: immutable after Create; every method is const and safe to
// call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace restkv::engine {

class BpeTokenizer;
class SpmTokenizer;

// GGUF tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// The tokenizer.* metadata of a model. Build it with TokenizerDataFromGguf
// (which applies llama.cpp's defaults for absent keys) or by hand in tests.
struct TokenizerData {
  std::string model;                 // tokenizer.ggml.model: "gpt2" or "llama"
  std::string pre;                   // tokenizer.ggml.pre: "smollm", "llama-bpe", "qwen2", ...
  std::vector<std::string> tokens;   // tokenizer.ggml.tokens; index = id
  std::vector<int32_t> token_types;  // tokenizer.ggml.token_type (TokenType); empty: all normal
  std::vector<float> scores;         // tokenizer.ggml.scores (SPM merge priority); may be empty
  std::vector<std::string> merges;   // tokenizer.ggml.merges ("left right", rank order), BPE
  int32_t bos_id = -1, eos_id = -1, eot_id = -1, unk_id = -1, pad_id = -1;  // -1: none
  bool add_bos = false, add_eos = false, add_space_prefix = false;
  std::string chat_template;  // tokenizer.chat_template (Jinja), may be empty
};

class Tokenizer {
 public:
  // Validates `data` and builds the lookup tables. InvalidArgument (naming
  // the problem) for: an unknown model or pre-tokeniser type, an empty
  // vocabulary, duplicate token texts, token_types/scores shorter than the
  // vocabulary, a merge that is not "left right", a special id out of range,
  // or add_bos/add_eos without a BOS/EOS id. Empty token texts are renamed
  // "[EMPTY_<id>]" as llama.cpp does.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(TokenizerData data);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of `text` (any bytes; invalid UTF-8 is tolerated). See the
  // file comment for add_special and parse_special.
  [[nodiscard]] std::vector<int32_t> Encode(std::string_view text, bool add_special,
                                            bool parse_special) const;

  // Raw bytes of one token: byte-level decoding for "gpt2", '▁' -> ' ' and
  // <0xNN> -> byte for "llama". Control and unknown tokens give "" unless
  // render_special (then their text); unused/undefined tokens give "".
  // An id outside [0, vocab_size) gives "".
  [[nodiscard]] std::string TokenToPiece(int32_t id, bool render_special = false) const;

  // Concatenated pieces (see the file comment). May be invalid UTF-8.
  [[nodiscard]] std::string Decode(absl::Span<const int32_t> ids,
                                   bool render_special = false) const;

  [[nodiscard]] int32_t vocab_size() const { return static_cast<int32_t>(data_.tokens.size()); }
  [[nodiscard]] int32_t bos_id() const { return data_.bos_id; }
  [[nodiscard]] int32_t eos_id() const { return data_.eos_id; }
  [[nodiscard]] bool IsValidId(int32_t id) const { return id >= 0 && id < vocab_size(); }

  // True for tokens that end generation: EOS, EOT, and tokens whose text
  // marks an end of turn (<|im_end|>, <|eot_id|>, <|end_of_text|>,
  // <|endoftext|>, </s>, <end_of_turn>, ...) or a FIM pad/repo/file
  // separator, the set llama.cpp's llama_vocab_is_eog uses.
  [[nodiscard]] bool IsEndOfGeneration(int32_t id) const { return eog_ids_.contains(id); }
  // Every id IsEndOfGeneration accepts (for min_tokens, which masks them).
  [[nodiscard]] const absl::flat_hash_set<int32_t>& end_of_generation_ids() const {
    return eog_ids_;
  }

  // True for control and unknown tokens (rendered only with render_special).
  [[nodiscard]] bool IsControl(int32_t id) const;

  // The id whose text is exactly `token_text` (texts as stored in the
  // vocabulary, e.g. "Ġthe" for gpt2), or nullopt.
  [[nodiscard]] std::optional<int32_t> TokenId(std::string_view token_text) const;

  [[nodiscard]] const TokenizerData& data() const { return data_; }

 private:
  explicit Tokenizer(TokenizerData data);
  absl::Status Init();

  // One element of the text after special tokens are cut out.
  struct Fragment {
    int32_t token;  // >= 0: a special token; -1: text[offset, offset+length)
    size_t offset;
    size_t length;
  };
  std::vector<Fragment> Partition(std::string_view text, bool parse_special) const;
  void EncodePlain(std::string_view text, std::vector<int32_t>* out) const;

  TokenizerData data_;
  bool is_spm_ = false;
  absl::flat_hash_map<std::string, int32_t> token_to_id_;
  std::vector<uint8_t> attrs_;              // per id, llama.cpp-style attribute bits
  std::vector<int32_t> special_by_length_;  // control/user-defined/unknown ids, longest first
  std::vector<std::string> pieces_;         // TokenToPiece(id, render_special=true)
  absl::flat_hash_set<int32_t> eog_ids_;
  std::unique_ptr<BpeTokenizer> bpe_;
  std::unique_ptr<SpmTokenizer> spm_;
};

}  // namespace restkv::engine
