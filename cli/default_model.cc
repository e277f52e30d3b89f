#include "cli/default_model.h"

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "absl/strings/str_format.h"

namespace restkv::cli {

absl::StatusOr<std::string> ResolveModelPath(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("RESTKV_MODEL"); env != nullptr && *env != '\0') {
    return std::string(env);
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates;
  if (!ec) {
    candidates.push_back(exe.parent_path().parent_path() / "models" / kDefaultModelFile);
    candidates.push_back(exe.parent_path() / "models" / kDefaultModelFile);
  }
  candidates.push_back(fs::current_path(ec) / "models" / kDefaultModelFile);
  for (const fs::path& p : candidates) {
    if (fs::exists(p, ec)) return p.string();
  }
  return absl::NotFoundError(
      absl::StrFormat("no --model given and the default model %s was not found under models/; "
                      "run scripts/fetch-model first (or set RESTKV_MODEL)",
                      kDefaultModelFile));
}

}  // namespace restkv::cli
