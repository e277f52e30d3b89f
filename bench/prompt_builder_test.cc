#include "bench/prompt_builder.h"

#include "absl/strings/str_split.h"
#include "bench/trace.h"
#include "gtest/gtest.h"

namespace restkv::bench {
namespace {

size_t Words(const std::string& s) {
  std::vector<std::string> w = absl::StrSplit(s, ' ', absl::SkipEmpty());
  return w.size();
}

TEST(PromptBuilder, EqualHashIdsGiveEqualBlocks) {
  const PromptBuilder b = PromptBuilder::Unchecked(7);
  const std::string a = b.Build(1100, {10, 11, 12}, 0);
  const std::string c = b.Build(1100, {10, 11, 99}, 1);
  const std::string d = b.Build(600, {10, 11}, 2);
  EXPECT_EQ(Words(a), 1100u);
  EXPECT_EQ(Words(d), 600u);
  // Block texts are the same for the same id, whatever the request.
  const std::string block10 = b.Block(10, kHashBlockTokens);
  const std::string block11 = b.Block(11, kHashBlockTokens);
  EXPECT_EQ(a.substr(0, block10.size() + block11.size()), block10 + block11);
  EXPECT_EQ(c.substr(0, block10.size() + block11.size()), block10 + block11);
  EXPECT_NE(a, c);
  // A cut block is the start of the full one: a shorter prompt is a prefix.
  EXPECT_EQ(a.substr(0, d.size()), d);
  EXPECT_NE(b.Block(10, 512), b.Block(13, 512));
}

TEST(PromptBuilder, RequestsWithoutIdsGetTheirOwnBlocksAndSeedsMatter) {
  const PromptBuilder b = PromptBuilder::Unchecked(7);
  EXPECT_NE(b.Build(100, {}, 0), b.Build(100, {}, 1));
  EXPECT_EQ(b.Build(100, {}, 3), b.Build(100, {}, 3));
  EXPECT_NE(PromptBuilder::Unchecked(8).Build(100, {}, 3), b.Build(100, {}, 3));
}

TEST(PromptBuilder, WithSeedKeepsTheStructureAndChangesTheText) {
  const PromptBuilder b = PromptBuilder::Unchecked(7);
  const PromptBuilder other = b.WithSeed(8);
  EXPECT_EQ(other.words(), b.words());
  EXPECT_EQ(other.Build(700, {1, 2}, 0), PromptBuilder::Unchecked(8).Build(700, {1, 2}, 0));
  EXPECT_NE(other.Build(700, {1, 2}, 0), b.Build(700, {1, 2}, 0));
  EXPECT_EQ(Words(other.Build(700, {1, 2}, 0)), 700u);
  // Shared prefixes stay shared under the new seed.
  const std::string x = other.Build(700, {1, 2}, 0), y = other.Build(600, {1, 3}, 1);
  EXPECT_EQ(x.substr(0, other.Block(1, kHashBlockTokens).size()),
            y.substr(0, other.Block(1, kHashBlockTokens).size()));
}

TEST(PromptBuilder, KeepsOnlySingleTokenWords) {
  // A fake tokenizer: words longer than 5 letters (plus the space) are two tokens.
  TokenCounter count = [](const std::string& text) -> absl::StatusOr<int32_t> {
    return text.size() > 6 ? 2 : 1;
  };
  auto b = PromptBuilder::FromTokenizer(count, 0);
  ASSERT_TRUE(b.ok()) << b.status();
  for (const std::string& w : b->words()) EXPECT_LE(w.size(), 5u);
  TokenCounter none = [](const std::string&) -> absl::StatusOr<int32_t> { return 3; };
  EXPECT_FALSE(PromptBuilder::FromTokenizer(none, 0).ok());
  TokenCounter broken = [](const std::string&) -> absl::StatusOr<int32_t> {
    return absl::UnavailableError("down");
  };
  EXPECT_FALSE(PromptBuilder::FromTokenizer(broken, 0).ok());
}

}  // namespace
}  // namespace restkv::bench
