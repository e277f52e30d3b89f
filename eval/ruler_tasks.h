// RULER's synthetic tasks that need no downloaded data set, generated from a
// seed with RULER's templates, answer prefixes and metrics:
//
//   niah_single_1/2/3       one needle; noise / licence text; numbers / numbers / UUIDs
//   niah_multikey_1/2/3     4 keys in text; a haystack of distractor needles (numbers; UUID keys
//   and values) niah_multivalue         one key with 4 values niah_multiquery         4 keys, all
//   asked for vt                      variable tracking: one chain of 4 hops in noise cwe common
//   words: 10 words x 30 among others x 3 (Debian wamerican) fwe                     frequent
//   words: Zipf(alpha 2) coded words, top 3
//
// Differences from RULER, by necessity: the "essay" haystack is the licence
// text (RULER: Paul Graham essays), keys come from a built-in adjective-noun
// list (RULER: wonderwords), and vt/cwe carry no one-shot example. Every
// task is scored with string_match_all (RULER's metric for all of them).
// A prompt has at most length - max_tokens tokens (RULER's accounting).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/tokenizer.h"
#include "eval/haystack.h"

namespace restkv::eval {

const std::vector<std::string>& RulerTaskNames();

struct TaskResources {
  Haystack essay;                  // licence text (or --haystack)
  Haystack noise;                  // RULER noise
  std::vector<std::string> words;  // lowercase dictionary words (cwe)
};

// words_path: a word list, one per line (default Debian's wamerican);
// entries that are not 3-10 lowercase ASCII letters are skipped.
absl::StatusOr<TaskResources> LoadTaskResources(const std::string& essay_source,
                                                const std::string& words_path);

struct TaskSample {
  std::string task;
  std::string prompt;                // template + answer prefix
  std::vector<int32_t> tokens;       // BOS included
  std::vector<std::string> answers;  // references for string_match_all
  int32_t max_tokens = 0;            // RULER's tokens_to_generate
};

// RULER's tokens_to_generate for a task (128 niah, 30 vt, 120 cwe, 50 fwe).
int32_t RulerMaxTokens(const std::string& task);

// Deterministic for (task, length, seed, index). max_tokens <= 0 uses RULER's.
// Errors: InvalidArgument for an unknown task or a length too short.
absl::StatusOr<TaskSample> MakeRulerSample(const std::string& task, const engine::Tokenizer& tok,
                                           const TaskResources& res, int32_t length,
                                           int32_t max_tokens, uint64_t seed, int32_t index);

}  // namespace restkv::eval
