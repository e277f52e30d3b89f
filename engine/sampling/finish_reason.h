// Why a sequence stopped producing tokens.
#pragma once

#include <string_view>

namespace restkv::engine {

enum class FinishReason {
  kStop,       // end-of-generation token, stop token id or stop string
  kLength,     // max_tokens or the context length
  kCancelled,  // Engine::Cancel or shutdown
  kError,      // see RequestSummary::error
};
std::string_view FinishReasonName(FinishReason r);  // "stop", "length", "cancelled", "error"

}  // namespace restkv::engine
