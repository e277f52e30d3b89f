#include "server/prompt_bound.h"

#include <random>
#include <string>

#include "engine/tokenizer/tiny_vocab_testutil.h"
#include "gtest/gtest.h"

namespace restkv::server {
namespace {

TEST(PromptBoundTest, MinTokensRoundsUp) {
  EXPECT_EQ(MinTokensForBytes(0, 4), 0);
  EXPECT_EQ(MinTokensForBytes(1, 4), 1);
  EXPECT_EQ(MinTokensForBytes(8, 4), 2);
  EXPECT_EQ(MinTokensForBytes(9, 4), 3);
  EXPECT_EQ(MinTokensForBytes(size_t{10} << 20, 81), 129454);  // 129453.8 up
}

TEST(PromptBoundTest, LongestTokenIncludesSpecialTexts) {
  // Bytes, "Ġhi" (3 input bytes) and "<|im_end|>" (10 bytes, parsed as one token).
  EXPECT_EQ(MaxInputBytesPerToken(*engine::ByteTokenizer()), 10);
}

// The bound must never exceed the real count: texts built from the tokens
// that cover the most bytes each, mixed with random bytes.
TEST(PromptBoundTest, NeverAboveTheRealTokenCount) {
  const auto tok = engine::ByteTokenizer();
  const int32_t l = MaxInputBytesPerToken(*tok);
  const char* const parts[] = {"<|im_end|>", " hi", " h", "i", "\n", "<|im_end", "\xe2\x96\x81"};
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    const int pieces = static_cast<int>(rng() % 40);
    for (int i = 0; i < pieces; ++i) {
      if (rng() % 4 == 0) {
        text += static_cast<char>(rng() % 256);
      } else {
        text += parts[rng() % std::size(parts)];
      }
    }
    const size_t tokens = tok->Encode(text, /*add_special=*/false, /*parse_special=*/true).size();
    EXPECT_LE(MinTokensForBytes(text.size(), l), static_cast<int64_t>(tokens)) << text;
  }
  // All special tokens: exactly one token per 10 bytes, the bound is tight.
  std::string specials;
  for (int i = 0; i < 5; ++i) specials += "<|im_end|>";
  EXPECT_EQ(MinTokensForBytes(specials.size(), l),
            static_cast<int64_t>(tok->Encode(specials, false, true).size()));
}

}  // namespace
}  // namespace restkv::server
