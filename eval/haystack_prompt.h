// Builds a prompt of a target token length: prefix, then haystack sentences
// with needles inserted at given depths, then suffix.
//
//   prompt = prefix + s0 s1 .. [needle] .. sK + suffix      (tokens <= target)
//
// Depth d of a needle: the fraction of the filler's tokens that precede it;
// needles go in at the sentence boundary closest to d, so a needle is always
// within one sentence of its requested depth and never splits a sentence.
// Filler cycles through the haystack when it is shorter than needed. The
// prompt is re-encoded after assembly and filler is dropped until the real
// token count (BOS included) is at most `target_tokens`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/tokenizer.h"
#include "eval/haystack.h"

namespace restkv::eval {

struct Needle {
  std::string text;
  double depth = 0.5;  // in [0, 1]
};

struct BuiltPrompt {
  std::string text;
  std::vector<int32_t> tokens;  // Encode(text, add_special=true)
  int32_t filler_sentences = 0;
};

// Errors: InvalidArgument when prefix, suffix and needles alone exceed the
// target, or a depth is outside [0, 1].
absl::StatusOr<BuiltPrompt> BuildHaystackPrompt(const engine::Tokenizer& tok,
                                                const Haystack& haystack, const std::string& prefix,
                                                const std::vector<Needle>& needles,
                                                const std::string& suffix, int32_t target_tokens);

}  // namespace restkv::eval
