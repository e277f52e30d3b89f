#include "engine/tokenizer/utf8.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace restkv::engine {
namespace {

TEST(Utf8Test, DecodesValidText) {
  EXPECT_EQ(DecodeUtf8Lenient("a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80"),
            (std::vector<uint32_t>{'a', 0xE9, 0x65E5, 0x1F600}));
}

TEST(Utf8Test, LenientDecodingReplacesOneByteAtATime) {
  // Stray continuation, truncated 3-byte sequence, byte 0xFF.
  EXPECT_EQ(DecodeUtf8Lenient("\x80"
                              "a"),
            (std::vector<uint32_t>{kReplacementChar, 'a'}));
  EXPECT_EQ(DecodeUtf8Lenient("\xE6\x97"),
            (std::vector<uint32_t>{kReplacementChar, kReplacementChar}));
  EXPECT_EQ(DecodeUtf8Lenient("\xFF"), (std::vector<uint32_t>{kReplacementChar}));
}

TEST(Utf8Test, AppendUtf8RoundTrips) {
  for (const uint32_t cpt : {0x41u, 0xE9u, 0x7FFu, 0x800u, 0xFFFFu, 0x10000u, 0x10FFFFu}) {
    std::string s;
    AppendUtf8(cpt, &s);
    EXPECT_EQ(DecodeUtf8Lenient(s), std::vector<uint32_t>{cpt}) << cpt;
  }
  std::string s;
  AppendUtf8(0x110000, &s);
  EXPECT_EQ(s, "\xEF\xBF\xBD");
}

TEST(Utf8Test, CompletePrefixHoldsBackOnlyACompletableTail) {
  EXPECT_EQ(CompleteUtf8PrefixLength(""), 0u);
  EXPECT_EQ(CompleteUtf8PrefixLength("abc"), 3u);
  EXPECT_EQ(CompleteUtf8PrefixLength("ab\xF0\x9F\x98"), 2u);  // emoji missing its last byte
  EXPECT_EQ(CompleteUtf8PrefixLength("ab\xF0\x9F\x98\x80"), 6u);
  EXPECT_EQ(CompleteUtf8PrefixLength("ab\xC3"), 2u);
  // Bytes that can never become valid are not held back.
  EXPECT_EQ(CompleteUtf8PrefixLength("ab\x80"), 3u);
  EXPECT_EQ(CompleteUtf8PrefixLength("ab\xC0"), 3u);      // overlong lead
  EXPECT_EQ(CompleteUtf8PrefixLength("ab\xED\xA0"), 4u);  // surrogate
  EXPECT_EQ(CompleteUtf8PrefixLength("\xF0\x9F"
                                     "a"),
            3u);  // interrupted sequence
}

TEST(Utf8Test, SanitizeReplacesMaximalSubparts) {
  EXPECT_EQ(SanitizeUtf8("ok \xC3\xA9"), "ok \xC3\xA9");
  EXPECT_EQ(SanitizeUtf8("\xF0\x9F"
                         "a"),
            "\xEF\xBF\xBD"
            "a");
  EXPECT_EQ(SanitizeUtf8("\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeUtf8("\xE6\x97"), "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace restkv::engine
