// Haystacks for needle-in-a-haystack cases: filler text split into sentences.
//
// Sources (HaystackSpec::source):
//   "licenses"  default: GPL-3, GPL-2, LGPL-2.1 and Apache-2.0 from
//               /usr/share/common-licenses (Debian's base-files ships them on
//               every system), about 90 kB of English prose, ~20k tokens of
//               SmolLM2 without repeating
//   "noise"     RULER's repeated-sentence noise ("The grass is green. ...")
//   any other   a UTF-8 text file
// Whitespace runs collapse to one space; a sentence ends after '.', '?' or
// '!' followed by a space. Filler longer than the source cycles through it.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace restkv::eval {

struct Haystack {
  std::string name;
  std::vector<std::string> sentences;  // non-empty, no leading/trailing space
};

// Errors: NotFound for an unreadable file, InvalidArgument for text without sentences.
absl::StatusOr<Haystack> LoadHaystack(const std::string& source);

// Splits prose into sentences (exposed for tests).
std::vector<std::string> SplitSentences(const std::string& text);

}  // namespace restkv::eval
