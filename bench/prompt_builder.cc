#include "bench/prompt_builder.h"

#include <random>

#include "absl/strings/str_split.h"
#include "bench/trace.h"

namespace restkv::bench {
namespace {

// Common English words; most are one token in Llama, GPT-2 and SmolLM vocabularies.
constexpr const char* kWords =
    "the of and to in is was for that on as with by he at from his it an were are which this "
    "be or has had first one their its new after who they two her she been other when there "
    "all during into school time may years more most only over city some world would where "
    "later up such used many can state about national out known university united then made "
    "team film under part also year could while three well being between people house work "
    "life war day back made good great small long high large old own last same right water "
    "place power world number group music story south north west east line play form city "
    "light name home side family party book point game head open service road order market "
    "field power land money paper local river system program question during public report "
    "design church case young black white red green blue short early free real best low human "
    "body child level office door health art city history data level model value area road "
    "student market plan rate law voice care death heart mind word friend reason research "
    "girl boy food letter table window river stone garden field forest summer winter morning "
    "evening night king queen army ship train car road bridge tower island mountain valley";

// splitmix64: spreads (seed, id) over the generator's seed space.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

const std::vector<std::string>& CandidateWords() {
  static const std::vector<std::string>* words = [] {
    auto* w = new std::vector<std::string>();
    for (absl::string_view word : absl::StrSplit(kWords, ' ', absl::SkipEmpty())) {
      if (std::find(w->begin(), w->end(), word) == w->end()) w->emplace_back(word);
    }
    return w;
  }();
  return *words;
}

absl::StatusOr<PromptBuilder> PromptBuilder::FromTokenizer(const TokenCounter& count,
                                                           uint64_t seed) {
  std::vector<std::string> words;
  for (const std::string& w : CandidateWords()) {
    absl::StatusOr<int32_t> n = count(" " + w);
    if (!n.ok()) return n.status();
    if (*n == 1) words.push_back(w);
  }
  if (words.size() < 16) {
    return absl::FailedPreconditionError(
        "the target's tokenizer encodes fewer than 16 of the built-in words as one token; "
        "prompts of exact lengths cannot be built");
  }
  return PromptBuilder(std::move(words), seed);
}

PromptBuilder PromptBuilder::Unchecked(uint64_t seed) {
  return PromptBuilder(CandidateWords(), seed);
}

std::string PromptBuilder::Block(int64_t hash_id, int32_t tokens) const {
  std::mt19937_64 rng(Mix(seed_ ^ Mix(static_cast<uint64_t>(hash_id))));
  std::uniform_int_distribution<size_t> pick(0, words_.size() - 1);
  std::string text;
  for (int32_t i = 0; i < tokens; ++i) {
    text += ' ';
    text += words_[pick(rng)];
  }
  return text;
}

std::string PromptBuilder::Build(int32_t tokens, const std::vector<int64_t>& hash_ids,
                                 int64_t request_index) const {
  std::string text;
  int32_t left = tokens;
  for (size_t b = 0; left > 0; ++b) {
    // Fresh ids live far from any trace's ids (which count up from 0).
    const int64_t id = b < hash_ids.size()
                           ? hash_ids[b]
                           : -1 - (request_index * 1'000'003 + static_cast<int64_t>(b));
    const int32_t n = std::min(left, kHashBlockTokens);
    // A cut block is the start of the full block, so a shared prefix stays shared.
    text += Block(id, n);
    left -= n;
  }
  return text;
}

}  // namespace restkv::bench
