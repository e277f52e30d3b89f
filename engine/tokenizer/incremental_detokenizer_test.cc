#include "engine/tokenizer/incremental_detokenizer.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/tiny_vocab_testutil.h"
#include "engine/tokenizer/utf8.h"

namespace restkv::engine {
namespace {

bool IsValidUtf8(const std::string& s) {
  return CompleteUtf8PrefixLength(s) == s.size() && SanitizeUtf8(s) == s;
}

TEST(IncrementalDetokenizerTest, HoldsBackAnEmojiSplitAcrossByteTokens) {
  auto tok = ByteTokenizer();
  IncrementalDetokenizer detok(*tok);
  // U+1F600 = F0 9F 98 80, one byte token each.
  EXPECT_EQ(detok.Push(0xF0), "");
  EXPECT_EQ(detok.Push(0x9F), "");
  EXPECT_EQ(detok.Push(0x98), "");
  EXPECT_EQ(detok.pending_bytes(), 3u);
  EXPECT_EQ(detok.Push(0x80), "\xF0\x9F\x98\x80");
  EXPECT_EQ(detok.pending_bytes(), 0u);
  EXPECT_EQ(detok.Push('a'), "a");
  EXPECT_EQ(detok.Flush(), "");
}

TEST(IncrementalDetokenizerTest, InvalidBytesBecomeReplacementCharacters) {
  auto tok = ByteTokenizer();
  IncrementalDetokenizer detok(*tok);
  // A stray continuation byte can never become valid: replaced at once.
  EXPECT_EQ(detok.Push(0x80), "\xEF\xBF\xBD");
  // An interrupted sequence is replaced when the interruption arrives.
  EXPECT_EQ(detok.Push(0xE6), "");
  EXPECT_EQ(detok.Push('x'),
            "\xEF\xBF\xBD"
            "x");
  // Flush gives what is still held back.
  EXPECT_EQ(detok.Push(0xF0), "");
  EXPECT_EQ(detok.Push(0x9F), "");
  EXPECT_EQ(detok.Flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(detok.pending_bytes(), 0u);
}

TEST(IncrementalDetokenizerTest, ControlTokensRenderOnlyWhenAsked) {
  auto tok = ByteTokenizer();
  IncrementalDetokenizer plain(*tok);
  EXPECT_EQ(plain.Push(256), "");
  IncrementalDetokenizer special(*tok, IncrementalDetokenizer::StripLeadingSpace::kKeep,
                                 /*render_special=*/true);
  EXPECT_EQ(special.Push(256), "<|im_end|>");
}

TEST(IncrementalDetokenizerTest, SpacesBetweenSpecialTokensSeparateThemFromText) {
  auto tok = ByteTokenizer();
  const auto keep = IncrementalDetokenizer::StripLeadingSpace::kKeep;
  auto run = [&](bool render, bool spaces) {
    IncrementalDetokenizer d(*tok, keep, render, spaces);
    std::string out;
    for (int32_t id : std::vector<int32_t>{'a', kByteTokenizerEos, kByteTokenizerEos, 'b'})
      out += d.Push(id);
    return out + d.Flush();
  };
  EXPECT_EQ(run(true, true), "a <|im_end|> <|im_end|> b");
  EXPECT_EQ(run(true, false), "a<|im_end|><|im_end|>b");
  EXPECT_EQ(run(false, true), "ab");  // nothing rendered, nothing spaced
  // No space before a special token that starts the stream.
  IncrementalDetokenizer first(*tok, keep, true, true);
  EXPECT_EQ(first.Push(kByteTokenizerEos), "<|im_end|>");
  EXPECT_EQ(first.Push('x'), " x");
}

TEST(IncrementalDetokenizerTest, ConcatenationEqualsDecodeOnRandomStreams) {
  auto tok = ByteTokenizer();
  const std::string texts[] = {
      "hi \xF0\x9F\x98\x80 there",
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
      "caf\xC3\xA9 hi",
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",
      "plain ascii",
  };
  for (const std::string& text : texts) {
    const std::vector<int32_t> ids = tok->Encode(text, false, false);
    IncrementalDetokenizer detok(*tok);
    std::string streamed;
    for (const int32_t id : ids) {
      const std::string piece = detok.Push(id);
      EXPECT_TRUE(IsValidUtf8(piece)) << text;
      streamed += piece;
    }
    streamed += detok.Flush();
    EXPECT_EQ(streamed, tok->Decode(ids));
    EXPECT_EQ(streamed, text);
  }
  // Random byte streams: every piece is valid UTF-8, and for streams whose
  // decoding is valid the concatenation equals Decode.
  std::mt19937 rng(7);
  const int32_t alphabet[] = {'a', ' ', 0xC3, 0xA9, 0xE6, 0x97, 0xA5, 0xF0, 0x9F, 0x98, 0x80, 257};
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<int32_t> ids(rng() % 12);
    for (int32_t& id : ids) id = alphabet[rng() % std::size(alphabet)];
    IncrementalDetokenizer detok(*tok);
    std::string streamed;
    for (const int32_t id : ids) {
      const std::string piece = detok.Push(id);
      ASSERT_TRUE(IsValidUtf8(piece));
      streamed += piece;
    }
    streamed += detok.Flush();
    ASSERT_TRUE(IsValidUtf8(streamed));
    const std::string decoded = tok->Decode(ids);
    EXPECT_EQ(streamed, SanitizeUtf8(decoded)) << "trial " << trial;
  }
}

// SentencePiece vocabulary with add_space_prefix: 0 <unk>, 1 <s>, 2 ▁hello, 3 ▁world.
std::unique_ptr<Tokenizer> SpmTokenizer() {
  TokenizerData d;
  d.model = "llama";
  d.tokens = {"<unk>", "<s>", "\xE2\x96\x81hello", "\xE2\x96\x81world"};
  d.token_types = {2, 3, 1, 1};
  d.unk_id = 0;
  d.bos_id = 1;
  d.add_space_prefix = true;
  return std::move(Tokenizer::Create(std::move(d))).value();
}

TEST(IncrementalDetokenizerTest, FirstTokenLosesItsPhantomSpaceLikeDecode) {
  auto tok = SpmTokenizer();
  IncrementalDetokenizer detok(*tok);
  EXPECT_EQ(detok.Push(2), "hello");
  EXPECT_EQ(detok.Push(3), " world");
  EXPECT_EQ(tok->Decode({2, 3}), "hello world");
  // After BOS, Decode (like llama_detokenize) keeps the space.
  IncrementalDetokenizer after_bos(*tok);
  EXPECT_EQ(after_bos.Push(1), "");
  EXPECT_EQ(after_bos.Push(2), " hello");
  // A stream that continues a prompt keeps it too.
  IncrementalDetokenizer keep(*tok, IncrementalDetokenizer::StripLeadingSpace::kKeep);
  EXPECT_EQ(keep.Push(3), " world");
}

}  // namespace
}  // namespace restkv::engine
