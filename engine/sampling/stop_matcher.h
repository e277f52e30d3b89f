// StopMatcher: finds stop strings in streamed output text without ever
// emitting a piece of one.
//
// Text that could be the start of a stop string is held back until it is
// ruled out (then released with what follows) or completed (then the stream
// ends just before the stop string). For stop "END":
//
//   Push("The E")  -> "The "        holds "E"
//   Push("N")      -> ""            holds "EN"
//   Push("X")      -> "ENX"         false start released
//   Push("EN"), Push("D.") -> "", then "" stopped, matched "END"
//
// NOTE(restkv): the match is the one that COMPLETES first in the byte
// stream (least end offset; at the same end, the longest). This is what a
// stream decides byte by byte, so the result never depends on how the text
// was cut into pushes: with stops {"ab", "abc"}, "ab" wins as soon as it is
// seen; with {"bc", "abcd"} and text "abcd", "bc" wins and "a" is emitted.
// (vLLM tries stop strings in list order within each detokenized chunk,
// which can depend on the chunking.)
//
// UTF-8: the matcher compares bytes and emits only bytes it was given, in
// order, never altered or invented. Each piece it emits ends where the
// caller's text ends or on a UTF-8 character boundary: a held-back suffix
// that would begin inside a multi-byte character is widened back to the
// character's lead byte (at most 3 bytes). So when callers push complete
// UTF-8 (IncrementalDetokenizer does), emitted text never splits a
// character, whatever the stop strings are.
//
// Empty stop strings are ignored (SamplingParams::Validate rejects them).
// With no stop strings, Push returns its input unchanged and holds nothing.
//
// Thread safety: none; one StopMatcher per request.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace restkv::engine {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stop);

  struct Result {
    std::string text;      // may be emitted now (when stopped: all of it precedes the stop string)
    bool stopped = false;  // a stop string completed; generation should end
    std::string matched;   // that stop string, when stopped
  };

  // Appends `new_text` to the stream and returns what may be emitted now.
  // Once a stop string has matched, every later call returns empty text with
  // stopped = true and the same `matched`; the rest of the stream is dropped.
  Result Push(std::string_view new_text);

  // End of generation without a stop: returns everything held back and
  // forgets it. Returns "" after a stop (the held text followed the match or
  // was part of it).
  std::string Flush();

  // Bytes currently held back (< the longest stop string's length + 3).
  [[nodiscard]] size_t num_held_bytes() const { return held_.size(); }

 private:
  std::vector<std::string> stop_;
  std::string held_;  // a suffix of the stream that may begin a stop string
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace restkv::engine
