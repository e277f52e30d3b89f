#include "eval/scoring.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace restkv::eval {
namespace {

bool Contains(const std::string& lower_pred, const std::string& ref) {
  return absl::StrContains(lower_pred, absl::AsciiStrToLower(ref));
}

}  // namespace

double StringMatchAll(const std::string& prediction, const std::vector<std::string>& references) {
  if (references.empty()) return 0.0;
  const std::string p = absl::AsciiStrToLower(prediction);
  int found = 0;
  for (const std::string& r : references) found += Contains(p, r) ? 1 : 0;
  return static_cast<double>(found) / static_cast<double>(references.size());
}

double StringMatchPart(const std::string& prediction, const std::vector<std::string>& references) {
  const std::string p = absl::AsciiStrToLower(prediction);
  for (const std::string& r : references) {
    if (Contains(p, r)) return 1.0;
  }
  return 0.0;
}

}  // namespace restkv::eval
