// Reading a --chat-template file (a Jinja chat template, as HF's
// chat_template.jinja or a GGUF's tokenizer.chat_template).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace restkv::cli {

// The file's text; InvalidArgument "--chat-template PATH: ..." when it
// cannot be read or is empty.
absl::StatusOr<std::string> ReadChatTemplateFile(const std::string& path);

}  // namespace restkv::cli
