#include "cli/chat_template_file.h"

#include <fstream>
#include <sstream>

namespace restkv::cli {

absl::StatusOr<std::string> ReadChatTemplateFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError("--chat-template " + path + ": cannot open the file");
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().empty())
    return absl::InvalidArgumentError("--chat-template " + path + ": the file is empty");
  return ss.str();
}

}  // namespace restkv::cli
