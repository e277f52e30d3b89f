// `restkv eval niah` cases: one needle "One of the special magic numbers for
// KEY is: VALUE." at a depth of a haystack, then the question, ending in the
// answer prefix so a base or instruct model completes with the number
// (RULER's niah_single template with a 7-digit number).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/tokenizer.h"
#include "eval/haystack.h"

namespace restkv::eval {

struct NiahCase {
  int32_t length = 0;  // requested prompt tokens
  double depth = 0.0;  // in [0, 1]
  std::string key, value;
  std::string needle;  // the inserted sentence
  std::string prompt;
  std::vector<int32_t> tokens;  // BOS included; size() <= length
};

// Deterministic for (seed, length, depth).
absl::StatusOr<NiahCase> MakeNiahCase(const engine::Tokenizer& tok, const Haystack& haystack,
                                      int32_t length, double depth, uint64_t seed);

// 1 if the value appears in the answer (string_match_all with one reference).
double ScoreNiah(const NiahCase& c, const std::string& answer);

}  // namespace restkv::eval
