#include "server/request_id.h"

#include "absl/strings/ascii.h"

namespace restkv::server {

std::string SanitizeRequestId(std::string_view header) {
  const absl::string_view trimmed =
      absl::StripAsciiWhitespace(absl::string_view(header.data(), header.size()));
  std::string id(trimmed.substr(0, kMaxRequestIdLength));
  for (char& c : id) {
    const bool ok = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                    c == ':' || c == '-';
    if (!ok) c = '_';
  }
  return id;
}

}  // namespace restkv::server
