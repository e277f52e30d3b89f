#include "server/prompt_bound.h"

#include <algorithm>

namespace restkv::server {

int32_t MaxInputBytesPerToken(const engine::Tokenizer& tokenizer) {
  // An <unk> stands for one UTF-8 character of up to 4 bytes.
  size_t longest = 4;
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    longest = std::max(longest, tokenizer.TokenToPiece(id, /*render_special=*/true).size());
  }
  return static_cast<int32_t>(longest);
}

int64_t MinTokensForBytes(size_t bytes, int32_t max_token_bytes) {
  const auto l = static_cast<uint64_t>(max_token_bytes);
  return static_cast<int64_t>((static_cast<uint64_t>(bytes) + l - 1) / l);
}

}  // namespace restkv::server
