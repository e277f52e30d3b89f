// A tiny byte-level BPE tokenizer for tests: ids 0..255 are the bytes,
// 256 = <|im_end|> (control, the EOS id), 257 = "Ġhi" (merged from "Ġ h").
#pragma once

#include <memory>
#include <string>

#include "engine/tokenizer/bpe_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"

namespace restkv::engine {

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
