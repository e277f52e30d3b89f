// Prompt token ids given as text, for `restkv eval keep --prompt-tokens-file`:
// lets an external tool (scripts/kvpress-agreement) feed the engine exactly
// the ids it tokenised itself, so both sides score the same sequence even
// where the two tokenisers (or BOS conventions) differ.
//
// Format: decimal integers separated by whitespace and/or commas; an optional
// enclosing JSON-style "[...]" is accepted, so a JSON array file works too.
// The ids are used verbatim: no BOS is added. Pure function.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace restkv::eval {

// Errors: InvalidArgument for an empty list, a token that is not a decimal
// integer, or an id outside [0, vocab_size) (naming the offending position).
absl::StatusOr<std::vector<int32_t>> ParseTokenIds(std::string_view text, int32_t vocab_size);

}  // namespace restkv::eval
