// Small tokenizer vocabularies for tests and fuzzers, written out by hand so
// that every id in an expectation can be read off the comment above it.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "engine/tokenizer/bpe_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"

namespace restkv::engine {

inline void AddToken(TokenizerData& d, std::string text, TokenType type, float score = 0.0f) {
  d.tokens.push_back(std::move(text));
  d.token_types.push_back(static_cast<int32_t>(type));
  d.scores.push_back(score);
}

// A byte-level BPE vocabulary:
//   0 <|endoftext|>  1 <|im_start|>  2 <|im_end|>  (control)
//   3 + b            the stand-in of byte b, for every byte (so any text encodes)
//   259 he  260 ll  261 hell  262 hello  263 Ġw  264 or  265 Ġwor  266 ld  267 Ġworld
//   268 <tool>       (user-defined)   269 lo
// with merges in rank order: h e, l l, he ll, hell o, Ġ w, o r, Ġw or, l d, Ġwor ld, l o.
inline TokenizerData TinyBpeData() {
  TokenizerData d;
  d.model = "gpt2";
  d.pre = "gpt-2";
  AddToken(d, "<|endoftext|>", TokenType::kControl);
  AddToken(d, "<|im_start|>", TokenType::kControl);
  AddToken(d, "<|im_end|>", TokenType::kControl);
  for (int b = 0; b < 256; ++b) {
    AddToken(d, BpeTokenizer::EncodeBytes(std::string(1, static_cast<char>(b))),
             TokenType::kNormal);
  }
  for (const char* t : {"he", "ll", "hell", "hello", "Ġw", "or", "Ġwor", "ld", "Ġworld"}) {
    AddToken(d, t, TokenType::kNormal);
  }
  AddToken(d, "<tool>", TokenType::kUserDefined);
  AddToken(d, "lo", TokenType::kNormal);
  d.merges = {"h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "l o"};
  d.bos_id = 0;
  d.eos_id = 0;
  return d;
}

// A tinier byte-level BPE tokenizer: ids 0..255 are the bytes,
// 256 = <|im_end|> (control, the EOS id), 257 = "Ġhi" (merged from "Ġ h").
inline constexpr int32_t kByteTokenizerEos = 256;

inline std::unique_ptr<Tokenizer> ByteTokenizer() {
  TokenizerData d;
  d.model = "gpt2";
  d.pre = "gpt-2";
  for (int b = 0; b < 256; ++b) {
    d.tokens.push_back(BpeTokenizer::EncodeBytes(std::string(1, static_cast<char>(b))));
    d.token_types.push_back(static_cast<int32_t>(TokenType::kNormal));
  }
  d.tokens.push_back("<|im_end|>");
  d.token_types.push_back(static_cast<int32_t>(TokenType::kControl));
  d.tokens.push_back("Ġhi");
  d.token_types.push_back(static_cast<int32_t>(TokenType::kNormal));
  d.merges = {"Ġ h", "Ġh i"};
  d.eos_id = kByteTokenizerEos;
  return std::move(Tokenizer::Create(std::move(d))).value();
}

}  // namespace restkv::engine
