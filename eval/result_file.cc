#include "eval/result_file.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_format.h"

namespace restkv::eval {

absl::StatusOr<ResultFile> ResultFile::Open(const std::string& path, const std::string& command,
                                            const nlohmann::json& config, bool resume) {
  ResultFile f;
  f.path_ = path;
  f.doc_ = {{"command", command}, {"config", config}, {"cases", nlohmann::json::array()}};
  if (resume && !path.empty() && std::filesystem::exists(path)) {
    std::ifstream in(path);
    nlohmann::json old = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (old.is_discarded() || !old.is_object() || !old.contains("cases") ||
        !old["cases"].is_array()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s is not a restkv eval result file", path));
    }
    if (old.value("command", "") != command || old["config"] != config) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%s was written by a different eval configuration; resume needs the same "
                          "command and options "
                          "(grid lists may differ only if they keep the same model and knobs)",
                          path));
    }
    for (const nlohmann::json& c : old["cases"]) {
      if (!c.contains("id")) continue;
      f.index_[c["id"].get<std::string>()] = f.doc_["cases"].size();
      f.doc_["cases"].push_back(c);
    }
    f.resumed_ = f.doc_["cases"].size();
  }
  return f;
}

const nlohmann::json* ResultFile::Find(const std::string& id) const {
  auto it = index_.find(id);
  return it == index_.end() ? nullptr : &doc_["cases"][it->second];
}

absl::Status ResultFile::Add(const nlohmann::json& c) {
  const std::string id = c.at("id").get<std::string>();
  auto it = index_.find(id);
  if (it != index_.end()) {
    doc_["cases"][it->second] = c;
  } else {
    index_[id] = doc_["cases"].size();
    doc_["cases"].push_back(c);
  }
  return Write();
}

absl::Status ResultFile::Write() const {
  if (path_.empty()) return absl::OkStatus();
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) return absl::PermissionDeniedError(absl::StrFormat("cannot write %s", tmp));
    out << doc_.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    if (!out) return absl::DataLossError(absl::StrFormat("writing %s failed", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path_, ec);
  if (ec)
    return absl::PermissionDeniedError(absl::StrFormat("cannot rename %s: %s", tmp, ec.message()));
  return absl::OkStatus();
}

}  // namespace restkv::eval
