// libFuzzer target for Tokenizer: any bytes must encode without crashing
// into in-range ids, and the promises of tokenizer.h and
// incremental_detokenizer.h must hold:
//   - Decode(Encode(s)) == s for valid UTF-8 s (byte-level BPE with and
//     without parse_special, then decoding with render_special; SentencePiece
//     without parse_special, since a fragment after a special token gets a
//     phantom space that Decode keeps, and only for s without U+2581, which
//     SentencePiece decodes as a space), when the vocabulary has a token for
//     every byte of s: a byte-level BPE vocabulary may lack some of the 256
//     byte stand-ins (SmolLM2's has no token for 0x04, 0x06, 0x13, 0x14,
//     0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, 0xF5-0xFF) and such bytes are
//     dropped, as llama.cpp drops them (see BpeTokenizer::EncodeWord);
//   - the IncrementalDetokenizer's pieces concatenate to Decode(ids) whenever
//     that is valid UTF-8, and are always valid UTF-8.
//
// Vocabularies: the model's named by RESTKV_MODEL (the default model's
// byte-level BPE with its real pre-tokeniser) when the variable is set, and
// always two small synthetic ones (byte-level BPE, SentencePiece with byte
// fallback). The input's first byte picks the vocabulary and flags.
//
// Built and run by tests/fuzz/run_corpus_fuzzer.sh tokenizer.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/gguf/gguf_file.h"
#include "engine/tokenizer/bpe_tokenizer.h"
#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tiny_vocab_testutil.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_gguf.h"
#include "engine/tokenizer/utf8.h"

namespace {

using restkv::engine::BpeTokenizer;
using restkv::engine::IncrementalDetokenizer;
using restkv::engine::Tokenizer;
using restkv::engine::TokenizerData;
using restkv::engine::TokenType;

void Require(bool ok) {
  if (!ok) __builtin_trap();
}

bool IsValidUtf8(std::string_view s) { return restkv::engine::SanitizeUtf8(s) == s; }

using restkv::engine::AddToken;

// Byte-level BPE (tiny_vocab_testutil.h) with a merge of two spaces, so that
// runs of whitespace take the pre-tokeniser's space-splitting paths.
TokenizerData SyntheticBpe() {
  TokenizerData d = restkv::engine::TinyBpeData();
  AddToken(d, "\xC4\xA0\xC4\xA0", TokenType::kNormal);  // "ĠĠ"
  d.merges.push_back("\xC4\xA0 \xC4\xA0");
  return d;
}

// SentencePiece with scores and a <0xNN> token for every byte.
TokenizerData SyntheticSpm() {
  TokenizerData d;
  d.model = "llama";
  AddToken(d, "<unk>", TokenType::kUnknown);
  AddToken(d, "<s>", TokenType::kControl);
  AddToken(d, "</s>", TokenType::kControl);
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    AddToken(d, std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">", TokenType::kByte);
  }
  AddToken(d, "\xE2\x96\x81", TokenType::kNormal, -1.0f);
  for (const char* t : {"h", "e", "l", "o", "a", "b"}) AddToken(d, t, TokenType::kNormal, -2.0f);
  AddToken(d, "\xE2\x96\x81h", TokenType::kNormal, -4.0f);
  AddToken(d, "he", TokenType::kNormal, -1.5f);
  AddToken(d, "ll", TokenType::kNormal, -1.0f);
  AddToken(d, "hell", TokenType::kNormal, -0.5f);
  AddToken(d, "hello", TokenType::kNormal, -0.2f);
  AddToken(d, "\xE2\x96\x81hello", TokenType::kNormal, -0.1f);
  AddToken(d, "ab", TokenType::kNormal, -1.0f);
  AddToken(d, "\xE2\x96\x81\xE2\x96\x81", TokenType::kNormal, -1.0f);
  d.unk_id = 0;
  d.bos_id = 1;
  d.eos_id = 2;
  d.add_bos = true;
  d.add_space_prefix = true;
  return d;
}

std::unique_ptr<Tokenizer> MustCreate(TokenizerData d) {
  auto tok = Tokenizer::Create(std::move(d));
  if (!tok.ok()) {
    std::fprintf(stderr, "tokenizer_fuzzer: %s\n", tok.status().ToString().c_str());
    std::abort();
  }
  return std::move(tok).value();
}

// A tokenizer and the bytes its vocabulary can spell on their own.
struct Vocabulary {
  std::unique_ptr<Tokenizer> tok;
  std::array<bool, 256> has_byte{};
};

Vocabulary WithByteCoverage(std::unique_ptr<Tokenizer> tok) {
  Vocabulary v;
  for (int b = 0; b < 256; ++b) {
    const std::string byte(1, static_cast<char>(b));
    if (tok->data().model == "gpt2") {
      v.has_byte[b] = tok->TokenId(BpeTokenizer::EncodeBytes(byte)).has_value();
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      v.has_byte[b] =
          tok->TokenId(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">").has_value();
    }
  }
  v.tok = std::move(tok);
  return v;
}

std::vector<Vocabulary> LoadTokenizers() {
  std::vector<Vocabulary> out;
  out.push_back(WithByteCoverage(MustCreate(SyntheticBpe())));
  out.push_back(WithByteCoverage(MustCreate(SyntheticSpm())));
  if (const char* model = std::getenv("RESTKV_MODEL"); model != nullptr && *model != '\0') {
    auto file = restkv::engine::GgufFile::Open(model);
    if (!file.ok()) {
      std::fprintf(stderr, "tokenizer_fuzzer: %s\n", file.status().ToString().c_str());
      std::abort();
    }
    auto data = restkv::engine::TokenizerDataFromGguf(**file);
    if (!data.ok()) {
      std::fprintf(stderr, "tokenizer_fuzzer: %s\n", data.status().ToString().c_str());
      std::abort();
    }
    out.push_back(WithByteCoverage(MustCreate(*std::move(data))));
    std::fprintf(stderr, "tokenizer_fuzzer: with the vocabulary of %s\n", model);
  }
  return out;
}

const std::vector<Vocabulary>& Tokenizers() {
  static const auto* tokenizers = new std::vector<Vocabulary>(LoadTokenizers());
  return *tokenizers;
}

void CheckDetokenizer(const Tokenizer& tok, const std::vector<int32_t>& ids, bool render_special) {
  IncrementalDetokenizer detok(tok, IncrementalDetokenizer::StripLeadingSpace::kLikeDecode,
                               render_special);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string piece = detok.Push(id);
    Require(IsValidUtf8(piece));
    Require(detok.pending_bytes() <= 3);
    streamed += piece;
  }
  const std::string rest = detok.Flush();
  Require(IsValidUtf8(rest));
  streamed += rest;
  const std::string decoded = tok.Decode(ids, render_special);
  if (IsValidUtf8(decoded)) Require(streamed == decoded);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Tokenizers();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& tokenizers = Tokenizers();
  const uint8_t control = data[0];
  const Vocabulary& vocab = tokenizers[(control & 0x0F) % tokenizers.size()];
  const Tokenizer& tok = *vocab.tok;
  const bool add_special = (control & 0x10) != 0;
  const bool parse_special = (control & 0x20) != 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);

  const std::vector<int32_t> ids = tok.Encode(text, add_special, parse_special);
  for (int32_t id : ids) Require(tok.IsValidId(id));
  CheckDetokenizer(tok, ids, parse_special);

  if (!IsValidUtf8(text)) return 0;
  for (const char c : text) {
    if (!vocab.has_byte[static_cast<uint8_t>(c)]) return 0;
  }
  const std::vector<int32_t> plain = add_special ? tok.Encode(text, false, parse_special) : ids;
  const bool is_spm = tok.data().model == "llama";
  // SentencePiece writes spaces as U+2581 and decodes U+2581 as a space, so a
  // text that already holds U+2581 cannot come back unchanged (llama.cpp and
  // sentencepiece itself lose it the same way).
  const bool spm_lossy = is_spm && text.find("\xE2\x96\x81") != std::string_view::npos;
  if ((!is_spm || !parse_special) && !spm_lossy) {
    Require(tok.Decode(plain, parse_special) == text);
  }
  return 0;
}
