// libFuzzer target for StopMatcher: stop strings and a stream cut into
// pushes are read from the input; the incremental result must agree with a
// naive search over the concatenated text (stop_matcher.h's contract):
//   - it stops iff some stop string occurs in the text, naming the one that
//     completes first (least end offset; at the same end, the longest);
//   - what it emits is always a prefix of the text, never containing a stop
//     string; without a stop, the pushes plus Flush() give the whole text;
//     with one, all of the text before the match except at most the 3 bytes
//     a character-boundary widening may drop (none when the text, the pieces
//     and the stop strings are valid UTF-8);
//   - it holds back fewer bytes than the longest stop string plus 3.
//
// Built and run by tests/fuzz/run_corpus_fuzzer.sh stop_matcher.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/sampling/stop_matcher.h"
#include "engine/tokenizer/utf8.h"

namespace {

using restkv::engine::StopMatcher;

void Require(bool ok) {
  if (!ok) __builtin_trap();
}

struct Expected {
  bool stopped = false;
  size_t start = 0;  // of the match, when stopped
  std::string matched;
};

Expected NaiveFind(const std::string& text, const std::vector<std::string>& stops) {
  Expected e;
  size_t best_end = 0;
  for (const std::string& s : stops) {
    if (s.empty()) continue;
    const size_t pos = text.find(s);
    if (pos == std::string::npos) continue;
    const size_t end = pos + s.size();
    if (!e.stopped || end < best_end || (end == best_end && pos < e.start)) {
      e.stopped = true;
      e.start = pos;
      e.matched = s;
      best_end = end;
    }
  }
  return e;
}

bool ContainsAny(const std::string& text, const std::vector<std::string>& stops) {
  for (const std::string& s : stops) {
    if (!s.empty() && text.find(s) != std::string::npos) return true;
  }
  return false;
}

bool IsValidUtf8(const std::string& s) { return restkv::engine::SanitizeUtf8(s) == s; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  std::vector<std::string> stops(in.ConsumeIntegralInRange<int>(0, 4));
  size_t longest = 0;
  for (std::string& s : stops) {
    s = in.ConsumeRandomLengthString(12);
    longest = std::max(longest, s.size());
  }
  std::vector<std::string> pushes;
  while (in.remaining_bytes() > 0 && pushes.size() < 64) {
    pushes.push_back(in.ConsumeRandomLengthString(32));
  }

  std::string text;
  for (const std::string& p : pushes) text += p;
  const Expected want = NaiveFind(text, stops);

  StopMatcher matcher(stops);
  std::string emitted;
  bool stopped = false;
  std::string matched;
  for (const std::string& p : pushes) {
    StopMatcher::Result r = matcher.Push(p);
    Require(!stopped || (r.stopped && r.text.empty() && r.matched == matched));
    emitted += r.text;
    if (r.stopped && !stopped) {
      stopped = true;
      matched = r.matched;
    }
    Require(!ContainsAny(emitted, stops));
    Require(matcher.num_held_bytes() < longest + 3 || stops.empty());
    Require(text.compare(0, emitted.size(), emitted) == 0);
  }
  const std::string flushed = matcher.Flush();
  Require(!stopped || flushed.empty());
  emitted += flushed;

  Require(stopped == want.stopped);
  if (!want.stopped) {
    Require(emitted == text);
    return 0;
  }
  Require(matched == want.matched);
  Require(emitted.size() <= want.start && emitted.size() + 3 >= want.start);
  Require(text.compare(0, emitted.size(), emitted) == 0);
  bool all_utf8 = IsValidUtf8(text);
  for (const std::string& s : stops) all_utf8 = all_utf8 && IsValidUtf8(s);
  for (const std::string& p : pushes) all_utf8 = all_utf8 && IsValidUtf8(p);
  if (all_utf8) Require(emitted.size() == want.start);
  return 0;
}
