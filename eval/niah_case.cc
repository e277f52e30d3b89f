#include "eval/niah_case.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "eval/haystack_prompt.h"
#include "eval/needle_words.h"
#include "eval/scoring.h"

namespace restkv::eval {

absl::StatusOr<NiahCase> MakeNiahCase(const engine::Tokenizer& tok, const Haystack& haystack,
                                      int32_t length, double depth, uint64_t seed) {
  NiahCase c;
  c.length = length;
  c.depth = depth;
  Rng rng(CaseSeed(seed, static_cast<uint64_t>(length),
                   static_cast<uint64_t>(std::llround(depth * 1e6))));
  c.key = RandomKey(rng);
  c.value = RandomNumber7(rng);
  c.needle = absl::StrFormat("One of the special magic numbers for %s is: %s.", c.key, c.value);
  const std::string prefix =
      "Some special magic numbers are hidden within the following text. Make sure to memorize "
      "them. "
      "I will quiz you about the numbers afterwards.\n";
  const std::string suffix = absl::StrFormat(
      "\nWhat is the special magic number for %s mentioned in the provided text? The special magic "
      "number for %s mentioned in the provided text is",
      c.key, c.key);
  auto built = BuildHaystackPrompt(tok, haystack, prefix, {{c.needle, depth}}, suffix, length);
  if (!built.ok()) return built.status();
  c.prompt = std::move(built->text);
  c.tokens = std::move(built->tokens);
  return c;
}

double ScoreNiah(const NiahCase& c, const std::string& answer) {
  return StringMatchAll(answer, {c.value});
}

}  // namespace restkv::eval
