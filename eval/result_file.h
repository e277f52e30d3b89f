// ResultFile: the JSON record of an evaluation grid, written after every case
// so an interrupted run can continue (--resume).
//
//   { "command": "niah", "config": {...}, "cases": [ {"id": "...", ...}, ... ] }
//
// Each case has a unique "id" naming its grid coordinates. The file is
// replaced atomically (write to PATH.tmp, rename). An empty path keeps the
// record in memory only.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace restkv::eval {

class ResultFile {
 public:
  // resume: load the cases of an existing file (its "command" and "config"
  // must equal these; else FailedPrecondition). Without resume an existing
  // file is replaced. Errors: InvalidArgument for an unparsable file.
  static absl::StatusOr<ResultFile> Open(const std::string& path, const std::string& command,
                                         const nlohmann::json& config, bool resume);

  [[nodiscard]] const nlohmann::json* Find(const std::string& id) const;
  // Appends (or replaces) the case with c["id"] and rewrites the file.
  absl::Status Add(const nlohmann::json& c);
  [[nodiscard]] const nlohmann::json& doc() const { return doc_; }
  [[nodiscard]] size_t resumed() const { return resumed_; }

 private:
  absl::Status Write() const;

  std::string path_;
  nlohmann::json doc_;
  std::map<std::string, size_t> index_;
  size_t resumed_ = 0;
};

}  // namespace restkv::eval
