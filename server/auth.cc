#include "server/auth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace restkv::server {
namespace {

// Compares in time that depends only on the lengths, so a caller cannot find
// the key byte by byte from response times.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

absl::Status ApiKeyAuth::Check(std::string_view authorization) const {
  if (!enabled()) return absl::OkStatus();
  absl::string_view value =
      absl::StripAsciiWhitespace(absl::string_view(authorization.data(), authorization.size()));
  if (value.empty()) {
    return absl::UnauthenticatedError(
        "missing API key: send the header 'Authorization: Bearer <key>'");
  }
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError("the Authorization header must be 'Bearer <key>'");
  }
  absl::string_view key = absl::StripAsciiWhitespace(value.substr(kScheme.size()));
  if (!ConstantTimeEquals(std::string_view(key.data(), key.size()), api_key_))
    return absl::UnauthenticatedError("incorrect API key");
  return absl::OkStatus();
}

bool ApiKeyAuth::IsPublicPath(std::string_view path) {
  return path == "/health" || path == "/live" || path == "/metrics" || path == "/version";
}

}  // namespace restkv::server
