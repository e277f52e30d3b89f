#include "eval/haystack.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include "absl/strings/str_format.h"

namespace restkv::eval {
namespace {

constexpr const char* kLicenseDir = "/usr/share/common-licenses/";
constexpr const char* kLicenseFiles[] = {"GPL-3", "GPL-2", "LGPL-2.1", "Apache-2.0"};
// RULER's noise haystack: one paragraph repeated.
constexpr const char* kNoise =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrFormat("cannot read haystack file %s", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::vector<std::string> SplitSentences(const std::string& text) {
  // Collapse whitespace first so sentences never carry line breaks.
  std::string flat;
  flat.reserve(text.size());
  for (char c : text) {
    const bool space = std::isspace(static_cast<unsigned char>(c)) != 0;
    if (space) {
      if (!flat.empty() && flat.back() != ' ') flat.push_back(' ');
    } else {
      flat.push_back(c);
    }
  }
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < flat.size(); ++i) {
    const char c = flat[i];
    if (c == ' ' && cur.empty()) continue;
    cur.push_back(c);
    const bool end =
        (c == '.' || c == '?' || c == '!') && (i + 1 == flat.size() || flat[i + 1] == ' ');
    if (end) {
      out.push_back(cur);
      cur.clear();
    }
  }
  while (!cur.empty() && cur.back() == ' ') cur.pop_back();
  if (!cur.empty()) out.push_back(cur);
  return out;
}

absl::StatusOr<Haystack> LoadHaystack(const std::string& source) {
  Haystack h;
  h.name = source.empty() ? "licenses" : source;
  std::string text;
  if (h.name == "licenses") {
    for (const char* f : kLicenseFiles) {
      auto t = ReadFile(std::string(kLicenseDir) + f);
      if (!t.ok()) return t.status();
      text += *t;
      text += "\n";
    }
  } else if (h.name == "noise") {
    text = kNoise;
  } else {
    auto t = ReadFile(h.name);
    if (!t.ok()) return t.status();
    text = std::move(*t);
  }
  h.sentences = SplitSentences(text);
  if (h.sentences.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat("haystack %s has no sentences", h.name));
  }
  return h;
}

}  // namespace restkv::eval
