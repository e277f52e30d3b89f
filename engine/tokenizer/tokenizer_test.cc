#include "engine/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/tokenizer/bpe_tokenizer.h"
#include "engine/tokenizer/tiny_vocab_testutil.h"

namespace restkv::engine {
namespace {

using Ids = std::vector<int32_t>;
constexpr int32_t kNormal = static_cast<int32_t>(TokenType::kNormal);

int32_t ByteId(char c) { return 3 + static_cast<uint8_t>(c); }

std::unique_ptr<Tokenizer> MustCreate(TokenizerData d) {
  auto tok = Tokenizer::Create(std::move(d));
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

TEST(BpeTokenizerTest, MergesByRank) {
  auto tok = MustCreate(TinyBpeData());
  ASSERT_NE(tok, nullptr);
  // "hello" merges h+e (rank 0), l+l (1), he+ll (2), hell+o (3); " world"
  // merges Ġ+w (4), o+r (5), Ġw+or (6), l+d (7), Ġwor+ld (8).
  EXPECT_EQ(tok->Encode("hello world", false, false), (Ids{262, 267}));
  // "ell": e+l has no rank, l+l has; nothing merges with "e" afterwards.
  EXPECT_EQ(tok->Encode("ell", false, false), (Ids{ByteId('e'), 260}));
  // Lower rank first: l+l (1) beats l+o (9); of two equal pairs the leftmost.
  EXPECT_EQ(tok->Encode("llo", false, false), (Ids{260, ByteId('o')}));
  EXPECT_EQ(tok->Encode("lll", false, false), (Ids{260, ByteId('l')}));
  EXPECT_EQ(tok->Encode("lo", false, false), (Ids{269}));
  // Words never merge across the pre-tokeniser's boundaries.
  EXPECT_EQ(tok->Encode("he llo", false, false), (Ids{259, ByteId(' ') /*Ġ*/, 260, ByteId('o')}));
}

TEST(BpeTokenizerTest, BytesWithoutMergesUseByteTokens) {
  auto tok = MustCreate(TinyBpeData());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("\xC3\xA9", false, false), (Ids{ByteId('\xC3'), ByteId('\xA9')}));
  EXPECT_EQ(tok->TokenToPiece(ByteId('\n')), "\n");
  EXPECT_EQ(tok->TokenToPiece(267), " world");
}

TEST(BpeTokenizerTest, SpecialTokensAreParsedOnlyWhenAsked) {
  auto tok = MustCreate(TinyBpeData());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("<|im_start|>hello<|im_end|>", false, true), (Ids{1, 262, 2}));
  const Ids plain = tok->Encode("<|im_start|>hello", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(tok->Decode(plain), "<|im_start|>hello");
  // User-defined tokens are always cut out, as in llama.cpp and HF.
  EXPECT_EQ(tok->Encode("he<tool>he", false, false), (Ids{259, 268, 259}));
}

TEST(BpeTokenizerTest, ControlTokensRenderOnlyWhenAsked) {
  auto tok = MustCreate(TinyBpeData());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->TokenToPiece(1), "");
  EXPECT_EQ(tok->TokenToPiece(1, /*render_special=*/true), "<|im_start|>");
  EXPECT_EQ(tok->Decode({1, 262, 2}), "hello");
  EXPECT_EQ(tok->Decode({1, 262, 2}, true), "<|im_start|>hello<|im_end|>");
  EXPECT_EQ(tok->TokenToPiece(268), "<tool>");  // user-defined tokens always render
  EXPECT_EQ(tok->TokenToPiece(-1), "");
  EXPECT_EQ(tok->TokenToPiece(tok->vocab_size()), "");
}

TEST(BpeTokenizerTest, AddSpecialFollowsMetadata) {
  TokenizerData d = TinyBpeData();
  d.add_bos = true;
  d.add_eos = true;
  auto tok = MustCreate(d);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("hello", true, false), (Ids{0, 262, 0}));
  EXPECT_EQ(tok->Encode("hello", false, false), (Ids{262}));
  EXPECT_EQ(tok->Encode("", true, false), (Ids{0, 0}));
}

TEST(BpeTokenizerTest, EndOfGenerationAndLookup) {
  auto tok = MustCreate(TinyBpeData());
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->IsEndOfGeneration(0));   // <|endoftext|>, also EOS
  EXPECT_TRUE(tok->IsEndOfGeneration(2));   // <|im_end|>
  EXPECT_FALSE(tok->IsEndOfGeneration(1));  // <|im_start|>
  EXPECT_FALSE(tok->IsEndOfGeneration(262));
  EXPECT_EQ(tok->TokenId("Ġworld"), 267);
  EXPECT_EQ(tok->TokenId("nope"), std::nullopt);
  EXPECT_EQ(tok->vocab_size(), 270);
}

TEST(BpeTokenizerTest, Llama3IgnoresMergesForWholeWordTokens) {
  TokenizerData d = TinyBpeData();
  // No merge sequence builds "Ġxyz", but it is a token: Llama 3 vocabularies
  // (converted from tiktoken) use such a word directly.
  AddToken(d, "Ġxyz", TokenType::kNormal);
  const int32_t xyz = static_cast<int32_t>(d.tokens.size()) - 1;
  auto gpt2 = MustCreate(d);
  d.pre = "llama-bpe";
  auto llama3 = MustCreate(d);
  ASSERT_NE(gpt2, nullptr);
  ASSERT_NE(llama3, nullptr);
  EXPECT_EQ(gpt2->Encode(" xyz", false, false),
            (Ids{ByteId(' '), ByteId('x'), ByteId('y'), ByteId('z')}));
  EXPECT_EQ(llama3->Encode(" xyz", false, false), (Ids{xyz}));
  EXPECT_EQ(llama3->Encode("hello world", false, false), (Ids{262, 267}));
}

TEST(BpeTokenizerTest, RoundTripsArbitraryText) {
  auto tok = MustCreate(TinyBpeData());
  ASSERT_NE(tok, nullptr);
  const std::string texts[] = {
      "",
      " ",
      "hello world",
      "  hello   world  ",
      "tabs\tand\nnewlines\r\n",
      "caf\xC3\xA9 na\xC3\xAFve",
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
      "\xF0\x9F\x98\x80\xF0\x9F\x91\x8D",
      "1234567 3.14 -42",
      "def f(x):\n    return x**2\n",
      "it's they'll we'd",
      std::string("nul\0byte", 8),
      "<|im_start|> not special",
      "a\xC2\xA0"
      "b\xE2\x80\x83"
      "c",
  };
  for (const std::string& s : texts) {
    EXPECT_EQ(tok->Decode(tok->Encode(s, false, false)), s) << s;
    EXPECT_EQ(tok->Decode(tok->Encode(s, false, true), true), s) << s;
  }
}

// A SentencePiece vocabulary (scores decide merge order, highest first):
//   0 <unk>  1 <s>  2 </s>  3 + b: <0xNN>
//   259 ▁  260 h  261 e  262 l  263 o  264 ▁h (-4)  265 he (-1.5)  266 ll (-1)
//   267 lo (-1.2)  268 hell (-0.5)  269 hello (-0.2)  270 ▁hello (-0.1)
//   271 a  272 b  273 c  274 ab (-1)  275 bc (-1)
TokenizerData TinySpmData() {
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
  for (const char* t : {"h", "e", "l", "o"}) AddToken(d, t, TokenType::kNormal, -2.0f);
  AddToken(d, "\xE2\x96\x81h", TokenType::kNormal, -4.0f);
  AddToken(d, "he", TokenType::kNormal, -1.5f);
  AddToken(d, "ll", TokenType::kNormal, -1.0f);
  AddToken(d, "lo", TokenType::kNormal, -1.2f);
  AddToken(d, "hell", TokenType::kNormal, -0.5f);
  AddToken(d, "hello", TokenType::kNormal, -0.2f);
  AddToken(d, "\xE2\x96\x81hello", TokenType::kNormal, -0.1f);
  for (const char* t : {"a", "b", "c"}) AddToken(d, t, TokenType::kNormal, -2.0f);
  AddToken(d, "ab", TokenType::kNormal, -1.0f);
  AddToken(d, "bc", TokenType::kNormal, -1.0f);
  d.unk_id = 0;
  d.bos_id = 1;
  d.eos_id = 2;
  d.add_bos = true;
  d.add_space_prefix = true;
  return d;
}

TEST(SpmTokenizerTest, MergesHighestScoreFirst) {
  auto tok = MustCreate(TinySpmData());
  ASSERT_NE(tok, nullptr);
  // "▁hello": ll (-1) beats lo (-1.2) and he (-1.5); then he, hell, hello, ▁hello.
  EXPECT_EQ(tok->Encode("hello", false, false), (Ids{270}));
  EXPECT_EQ(tok->Encode("hello", true, false), (Ids{1, 270}));
  // Equal scores: the leftmost pair merges first ("ab" before "bc").
  TokenizerData d = TinySpmData();
  d.add_space_prefix = false;
  auto no_prefix = MustCreate(d);
  ASSERT_NE(no_prefix, nullptr);
  EXPECT_EQ(no_prefix->Encode("abc", false, false), (Ids{274, 273}));
  // "ll" wins over "lo", so "llo" ends as ll + o.
  EXPECT_EQ(no_prefix->Encode("llo", false, false), (Ids{266, 263}));
}

TEST(SpmTokenizerTest, UnknownCharactersFallBackToBytes) {
  auto tok = MustCreate(TinySpmData());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Encode("\xC3\xA9", false, false), (Ids{259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ(tok->TokenToPiece(3 + 0xC3), "\xC3");
  EXPECT_EQ(tok->TokenToPiece(259), " ");
}

TEST(SpmTokenizerTest, SpacePrefixAfterSpecialTokens) {
  auto tok = MustCreate(TinySpmData());
  ASSERT_NE(tok, nullptr);
  // Each text fragment that starts the text or follows a special token gets
  // the phantom space, as in llama.cpp.
  EXPECT_EQ(tok->Encode("hello</s>hello", false, true), (Ids{270, 2, 270}));
  EXPECT_EQ(tok->Encode("<s>", false, true), (Ids{1}));
}

TEST(SpmTokenizerTest, DecodeDropsTheFirstPhantomSpaceLikeLlamaCpp) {
  auto tok = MustCreate(TinySpmData());
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Decode({270}), "hello");
  EXPECT_EQ(tok->Decode({270, 270}), "hello hello");
  // llama_detokenize only strips the very first piece; after BOS it keeps it.
  EXPECT_EQ(tok->Decode({1, 270}), " hello");
}

TEST(SpmTokenizerTest, RoundTripsText) {
  auto tok = MustCreate(TinySpmData());
  ASSERT_NE(tok, nullptr);
  const std::string texts[] = {
      "hello",          " hello  hello ", "abc cab", "\xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80",
      "new\nline\ttab", "caf\xC3\xA9",    "12345",
  };
  for (const std::string& s : texts) {
    EXPECT_EQ(tok->Decode(tok->Encode(s, false, false)), s) << s;
  }
}

TEST(TokenizerTest, CreateRejectsBadData) {
  auto code = [](TokenizerData d) { return Tokenizer::Create(std::move(d)).status().code(); };
  TokenizerData d = TinyBpeData();
  d.model = "wordpiece";
  EXPECT_EQ(code(d), absl::StatusCode::kInvalidArgument);
  d = TinyBpeData();
  d.pre = "klingon";
  const auto status = Tokenizer::Create(d).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("klingon"), std::string::npos);
  d = TinyBpeData();
  d.tokens.clear();
  d.token_types.clear();
  d.scores.clear();
  EXPECT_EQ(code(d), absl::StatusCode::kInvalidArgument);
  d = TinyBpeData();
  d.merges.push_back("nospace");
  EXPECT_EQ(code(d), absl::StatusCode::kInvalidArgument);
  d = TinyBpeData();
  d.eos_id = 100000;
  EXPECT_EQ(code(d), absl::StatusCode::kInvalidArgument);
  d = TinyBpeData();
  d.tokens[5] = d.tokens[6];
  EXPECT_EQ(code(d), absl::StatusCode::kInvalidArgument);
  d = TinyBpeData();
  d.bos_id = -1;
  d.add_bos = true;
  EXPECT_EQ(code(d), absl::StatusCode::kInvalidArgument);
  d = TinyBpeData();
  d.token_types.pop_back();
  EXPECT_EQ(code(d), absl::StatusCode::kInvalidArgument);
}

TEST(TokenizerTest, EndOfGenerationTextsAreForcedToControl) {
  TokenizerData d;
  d.model = "gpt2";
  d.pre = "gpt-2";
  d.tokens = {"a", "b", "<|eot_id|>"};
  d.token_types = {kNormal, kNormal, kNormal};  // a converter that forgot the type
  auto tok = MustCreate(d);
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->IsEndOfGeneration(2));
  EXPECT_TRUE(tok->IsControl(2));
  EXPECT_EQ(tok->TokenToPiece(2), "");
  EXPECT_EQ(tok->Encode("a<|eot_id|>", false, true), (Ids{0, 2}));
}

TEST(TokenizerTest, EmptyTokenTextsAreRenamed) {
  TokenizerData d;
  d.model = "gpt2";
  d.pre = "gpt-2";
  d.tokens = {"a", ""};
  auto tok = MustCreate(d);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->TokenId("[EMPTY_1]"), 1);
}

}  // namespace
}  // namespace restkv::engine
