#include "common/byte_size.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace restkv {

absl::StatusOr<int64_t> ParseByteSize(std::string_view text) {
  const std::string s(absl::StripAsciiWhitespace(std::string(text)));
  size_t split = 0;
  while (split < s.size() &&
         (std::isdigit(static_cast<unsigned char>(s[split])) || s[split] == '.')) {
    ++split;
  }
  double value = 0;
  if (split == 0 || !absl::SimpleAtod(s.substr(0, split), &value) || value < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s' is not a memory size (examples: 2GiB, 512MiB, 1000000)", text));
  }
  const std::string unit =
      absl::AsciiStrToLower(std::string(absl::StripAsciiWhitespace(s.substr(split))));
  double mult = 0;
  if (unit.empty() || unit == "b")
    mult = 1;
  else if (unit == "k" || unit == "kib")
    mult = 1024.0;
  else if (unit == "kb")
    mult = 1e3;
  else if (unit == "m" || unit == "mib")
    mult = 1024.0 * 1024;
  else if (unit == "mb")
    mult = 1e6;
  else if (unit == "g" || unit == "gib")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "gb")
    mult = 1e9;
  else if (unit == "t" || unit == "tib")
    mult = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "tb")
    mult = 1e12;
  if (mult == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "'%s': unknown unit '%s' (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)", text, unit));
  }
  const double bytes = value * mult;
  if (bytes > 9.0e18) return absl::InvalidArgumentError(absl::StrFormat("'%s' is too large", text));
  return static_cast<int64_t>(std::llround(bytes));
}

std::string FormatByteSize(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  return u == 0 ? absl::StrFormat("%d B", bytes) : absl::StrFormat("%.2f %s", v, units[u]);
}

}  // namespace restkv
