// ApiKeyAuth: the optional API key (--api-key or $RESTKV_API_KEY), checked as
// OpenAI clients send it: "Authorization: Bearer <key>".
//
// With no key configured every request is allowed. With a key, every route
// needs it except the public ones that probes and scrapers call without
// credentials: /health, /live, /metrics, /version (IsPublicPath).
// The comparison takes the same time wherever the keys differ.
//
// Thread safety: immutable after construction.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace restkv::server {

class ApiKeyAuth {
 public:
  // An empty key disables authentication.
  explicit ApiKeyAuth(std::string api_key) : api_key_(std::move(api_key)) {}

  [[nodiscard]] bool enabled() const { return !api_key_.empty(); }

  // OK when auth is disabled or `authorization` (the header's value, "" when
  // absent) is "Bearer <the key>" (scheme case-insensitive). Unauthenticated
  // otherwise, saying whether the header was missing or the key wrong.
  [[nodiscard]] absl::Status Check(std::string_view authorization) const;

  // True for paths served without a key; `path` excludes the query string.
  static bool IsPublicPath(std::string_view path);

 private:
  std::string api_key_;
};

}  // namespace restkv::server
