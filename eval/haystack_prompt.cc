#include "eval/haystack_prompt.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_format.h"

namespace restkv::eval {
namespace {

int32_t CountTokens(const engine::Tokenizer& tok, const std::string& text) {
  return static_cast<int32_t>(
      tok.Encode(text, /*add_special=*/false, /*parse_special=*/false).size());
}

std::string Assemble(const Haystack& h, int32_t num_sentences,
                     const std::vector<int32_t>& sentence_tokens, const std::string& prefix,
                     const std::vector<Needle>& needles, const std::string& suffix) {
  const int32_t n = static_cast<int32_t>(h.sentences.size());
  // cum[k] = filler tokens before boundary k.
  std::vector<int64_t> cum(num_sentences + 1, 0);
  for (int32_t i = 0; i < num_sentences; ++i) cum[i + 1] = cum[i] + sentence_tokens[i % n];
  std::vector<std::vector<const Needle*>> at(num_sentences + 1);
  for (const Needle& nd : needles) {
    const double want = nd.depth * static_cast<double>(cum[num_sentences]);
    int32_t best = 0;
    for (int32_t k = 1; k <= num_sentences; ++k) {
      if (std::abs(static_cast<double>(cum[k]) - want) <
          std::abs(static_cast<double>(cum[best]) - want))
        best = k;
    }
    at[best].push_back(&nd);
  }
  std::string ctx;
  auto append = [&](const std::string& piece) {
    if (!ctx.empty()) ctx.push_back(' ');
    ctx += piece;
  };
  for (int32_t k = 0; k <= num_sentences; ++k) {
    for (const Needle* nd : at[k]) append(nd->text);
    if (k < num_sentences) append(h.sentences[k % n]);
  }
  return prefix + ctx + suffix;
}

}  // namespace

absl::StatusOr<BuiltPrompt> BuildHaystackPrompt(const engine::Tokenizer& tok,
                                                const Haystack& haystack, const std::string& prefix,
                                                const std::vector<Needle>& needles,
                                                const std::string& suffix, int32_t target_tokens) {
  for (const Needle& nd : needles) {
    if (!(nd.depth >= 0.0 && nd.depth <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("needle depth %g is outside [0, 1]", nd.depth));
    }
  }
  const std::string bare = Assemble(haystack, 0, {}, prefix, needles, suffix);
  const int32_t fixed = static_cast<int32_t>(tok.Encode(bare, true, false).size());
  if (fixed > target_tokens) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the prompt without filler has %d tokens, more than the requested %d",
                        fixed, target_tokens));
  }
  std::vector<int32_t> sentence_tokens;
  sentence_tokens.reserve(haystack.sentences.size());
  for (const std::string& s : haystack.sentences)
    sentence_tokens.push_back(CountTokens(tok, " " + s));
  const int32_t n = static_cast<int32_t>(sentence_tokens.size());
  int64_t budget = target_tokens - fixed;
  BuiltPrompt out;
  for (int iter = 0; iter < 64; ++iter) {
    int32_t k = 0;
    int64_t used = 0;
    while (used + sentence_tokens[k % n] <= budget) used += sentence_tokens[k++ % n];
    out.text = Assemble(haystack, k, sentence_tokens, prefix, needles, suffix);
    out.tokens = tok.Encode(out.text, true, false);
    out.filler_sentences = k;
    const int64_t excess = static_cast<int64_t>(out.tokens.size()) - target_tokens;
    if (excess <= 0) return out;
    budget -= excess;
  }
  return absl::InternalError("could not fit the haystack prompt to its length");
}

}  // namespace restkv::eval
