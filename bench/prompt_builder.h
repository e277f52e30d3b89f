// Prompts of a given token length, built from words the target's tokenizer
// encodes as exactly one token each (" the", " house", ...). Joined with
// spaces, each word stays one token, so a prompt of N words is N tokens
// (plus whatever the server adds: BOS, a chat template).
//
// Prefix structure: a Mooncake request's prompt is its hash_ids' blocks in
// order, block i holding kHashBlockTokens words drawn by a generator seeded
// with (seed, hash id) — equal ids give equal text, so prefix caches see
// the trace's sharing. The last block is cut to the request's length.
// Requests without hash ids get blocks of their own (ids derived from the
// request's index, never equal to another request's).
//
// Thread safety: const methods are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace restkv::bench {

// Built-in candidates for the word pool.
const std::vector<std::string>& CandidateWords();

// Counts the tokens of text (without special tokens), e.g. via /tokenize.
using TokenCounter = std::function<absl::StatusOr<int32_t>(const std::string& text)>;

class PromptBuilder {
 public:
  // Keeps the candidate words `count` says are one token (with a leading
  // space). An error from `count` is returned; FailedPrecondition when fewer
  // than 16 words qualify.
  static absl::StatusOr<PromptBuilder> FromTokenizer(const TokenCounter& count, uint64_t seed);
  // Without a tokenizer: assumes every candidate word is one token.
  static PromptBuilder Unchecked(uint64_t seed);
  // REQUIRES: words non-empty.
  PromptBuilder(std::vector<std::string> words, uint64_t seed)
      : words_(std::move(words)), seed_(seed) {}

  // The text of block `hash_id`, `tokens` words long (<= kHashBlockTokens).
  std::string Block(int64_t hash_id, int32_t tokens) const;
  // A prompt of `tokens` tokens made of `hash_ids`' blocks; when hash_ids is
  // empty, of fresh blocks unique to `request_index`.
  std::string Build(int32_t tokens, const std::vector<int64_t>& hash_ids,
                    int64_t request_index) const;

  // The same words, other text: a copy whose blocks come from `seed`.
  PromptBuilder WithSeed(uint64_t seed) const { return PromptBuilder(words_, seed); }

  const std::vector<std::string>& words() const { return words_; }

 private:
  std::vector<std::string> words_;
  uint64_t seed_;
};

}  // namespace restkv::bench
