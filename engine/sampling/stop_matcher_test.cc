#include "engine/sampling/stop_matcher.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace restkv::engine {
namespace {

// What a client would see: every pushed piece's text, plus the flush when the
// stream ends without a stop.
struct Stream {
  std::string text;
  bool stopped = false;
  std::string matched;
};

Stream RunStream(const std::vector<std::string>& stops, const std::vector<std::string>& pieces) {
  StopMatcher m(stops);
  Stream s;
  for (const std::string& piece : pieces) {
    StopMatcher::Result r = m.Push(piece);
    s.text += r.text;
    if (r.stopped) {
      s.stopped = true;
      s.matched = r.matched;
      return s;
    }
  }
  s.text += m.Flush();
  return s;
}

TEST(StopMatcherTest, NewlineSplitAcrossTokens) {
  StopMatcher m({"\n"});
  StopMatcher::Result r = m.Push("Par");
  EXPECT_EQ(r.text, "Par");
  EXPECT_FALSE(r.stopped);
  r = m.Push("is\n");
  EXPECT_EQ(r.text, "is");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.matched, "\n");
}

TEST(StopMatcherTest, StopArrivingByteByByteIsNeverEmitted) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.Push("Hello E").text, "Hello ");
  EXPECT_EQ(m.num_held_bytes(), 1u);
  StopMatcher::Result r = m.Push("N");
  EXPECT_EQ(r.text, "");
  EXPECT_FALSE(r.stopped);
  r = m.Push("D");
  EXPECT_EQ(r.text, "");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.matched, "END");
  // After the stop everything is dropped, and the answer does not change.
  r = m.Push("more");
  EXPECT_EQ(r.text, "");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.matched, "END");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, TextAfterAFalseStartIsReleased) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.Push("EN").text, "");
  StopMatcher::Result r = m.Push("X");
  EXPECT_EQ(r.text, "ENX");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(m.num_held_bytes(), 0u);
}

TEST(StopMatcherTest, OverlappingFalseStartKeepsTheLiveSuffix) {
  // "aaab": after "aaa" only the last "aa" can still start "aab".
  const Stream s = RunStream({"aab"}, {"a", "a", "a", "b", "c"});
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.text, "a");
}

TEST(StopMatcherTest, FlushReturnsHeldText) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.Push("the E").text, "the ");
  EXPECT_EQ(m.Flush(), "E");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, EmptyStopListPassesEverythingThrough) {
  StopMatcher m({});
  const StopMatcher::Result r = m.Push("E N D \n");
  EXPECT_EQ(r.text, "E N D \n");
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(m.Flush(), "");
  StopMatcher only_empty({""});  // empty strings are ignored
  EXPECT_EQ(only_empty.Push("abc").text, "abc");
}

TEST(StopMatcherTest, ShorterStopThatIsAPrefixOfALongerOneWins) {
  for (const auto& stops :
       {std::vector<std::string>{"ab", "abc"}, std::vector<std::string>{"abc", "ab"}}) {
    Stream s = RunStream(stops, {"x a", "b", "c"});
    EXPECT_TRUE(s.stopped);
    EXPECT_EQ(s.text, "x ");
    EXPECT_EQ(s.matched, "ab");
    s = RunStream(stops, {"x abc"});  // same answer in one piece
    EXPECT_EQ(s.text, "x ");
    EXPECT_EQ(s.matched, "ab");
  }
}

TEST(StopMatcherTest, FirstToCompleteWinsWhateverTheChunking) {
  const std::vector<std::string> stops = {"abcd", "bc"};
  for (const auto& pieces :
       {std::vector<std::string>{"abcd"}, std::vector<std::string>{"a", "b", "c", "d"},
        std::vector<std::string>{"ab", "cd"}}) {
    const Stream s = RunStream(stops, pieces);
    EXPECT_TRUE(s.stopped);
    EXPECT_EQ(s.text, "a");
    EXPECT_EQ(s.matched, "bc");
  }
  // At the same end, the longer (earlier-starting) one: nothing of it leaks.
  const Stream s = RunStream({"b", "ab"}, {"xab"});
  EXPECT_EQ(s.text, "x");
  EXPECT_EQ(s.matched, "ab");
}

TEST(StopMatcherTest, HeldTextIsMadeOfWholeCharacters) {
  // "好吗" starts with "好": hold all three bytes of it, release them later.
  StopMatcher m({"好吗"});
  EXPECT_EQ(m.Push("你好").text, "你");
  EXPECT_EQ(m.num_held_bytes(), 3u);
  EXPECT_EQ(m.Push("世界").text, "好世界");
  const StopMatcher::Result r = m.Push("好吗?");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "");
}

TEST(StopMatcherTest, StopStartingMidCharacterNeverSplitsIt) {
  // A stop string that is not valid UTF-8 on its own: the second byte of "à"
  // (C3 A0) followed by "X". Holding "\xA0" alone would split "à".
  StopMatcher m({"\xA0X"});
  EXPECT_EQ(m.Push("l\xC3\xA0").text, "l");
  EXPECT_EQ(m.Push("y").text, "\xC3\xA0y");
  // Matching mid-character drops the partial character instead of emitting it.
  StopMatcher m2({"\xA0X"});
  const StopMatcher::Result r = m2.Push("l\xC3\xA0X");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "l");
}

// The least-end match found by brute force over the whole text.
Stream Reference(const std::vector<std::string>& stops, const std::string& text) {
  for (size_t end = 1; end <= text.size(); ++end) {
    for (size_t start = 0; start < end; ++start) {
      for (const std::string& s : stops) {
        if (text.compare(start, end - start, s) == 0) return {text.substr(0, start), true, s};
      }
    }
  }
  return {text, false, ""};
}

TEST(StopMatcherTest, RandomChunkingsAgreeWithBruteForce) {
  const std::vector<std::string> stops = {"ab", "abc", "bca", "cc", "acab"};
  std::mt19937 rng(2024);
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    const int len = static_cast<int>(rng() % 12);
    for (int i = 0; i < len; ++i) text += "abcx"[rng() % 4];
    std::vector<std::string> pieces;
    for (size_t at = 0; at < text.size();) {
      const size_t n = 1 + rng() % 4;
      pieces.push_back(text.substr(at, n));
      at += n;
    }
    const Stream want = Reference(stops, text);
    const Stream got = RunStream(stops, pieces);
    EXPECT_EQ(got.text, want.text) << "text \"" << text << "\"";
    EXPECT_EQ(got.stopped, want.stopped) << "text \"" << text << "\"";
    EXPECT_EQ(got.matched, want.matched) << "text \"" << text << "\"";
  }
}

}  // namespace
}  // namespace restkv::engine
