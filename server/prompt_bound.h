// A lower bound on the token count of a text from its byte length alone, so
// that a prompt which cannot fit the context is refused without running the
// tokenizer over it (a multi-megabyte single-word prompt costs seconds of BPE
// merging; its length costs nothing).
//
// The bound: if no token of the vocabulary covers more than L bytes of input,
// a text of B bytes needs at least ceil(B / L) tokens. It is sound for both
// algorithms the engine's Tokenizer implements because each emitted token
// covers exactly the bytes of its piece, and nothing is normalised away:
//   - "gpt2" (byte-level BPE): the byte-to-unicode map is a bijection, so a
//     token's decoded piece is exactly the input bytes it consumed; special
//     tokens cut out of the text cover their own text.
//   - "llama" (SentencePiece-style BPE): '▁' (3 bytes) stands for one input
//     space and TokenToPiece already maps it back to ' '; <0xNN> byte-fallback
//     tokens cover one byte; the phantom leading space adds a byte that is not
//     in the input, which only raises the count; whitespace is not collapsed
//     (Decode(Encode(s)) == s, tokenizer.h). An <unk> covers one UTF-8
//     character, at most 4 bytes, hence the floor of 4 on L.
// L is measured over the whole vocabulary with special tokens rendered, once
// at start-up. A bound from the other side (bytes >= tokens) would be of no
// use here: it cannot prove a text too long.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/tokenizer/tokenizer.h"

namespace restkv::server {

// The most input bytes any one token of `tokenizer` can cover (>= 4).
int32_t MaxInputBytesPerToken(const engine::Tokenizer& tokenizer);

// ceil(bytes / max_token_bytes): the fewest tokens a text of `bytes` bytes
// can be encoded into. REQUIRES: max_token_bytes >= 1.
int64_t MinTokensForBytes(size_t bytes, int32_t max_token_bytes);

}  // namespace restkv::server
