// Where the default model lives when --model is not given.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace restkv::cli {

inline constexpr char kDefaultModelFile[] = "SmolLM2-135M-Instruct.Q4_1.gguf";

// Returns `flag` if non-empty; else $RESTKV_MODEL; else the first existing
// models/<kDefaultModelFile> next to the binary's parent folder (build/..),
// next to the binary, or under the working directory.
// Errors: NotFound telling the user to run scripts/fetch-model.
absl::StatusOr<std::string> ResolveModelPath(const std::string& flag);

}  // namespace restkv::cli
