// KV capacity errors: a request whose KV footprint can never fit the KV page
// pool, however long it waits. Retrying the same request cannot help (unlike
// a full queue), so frontends report it as "request too large" (HTTP 413,
// gRPC RESOURCE_EXHAUSTED) rather than "retry later" (HTTP 429).
//
// The status is ResourceExhausted (what gRPC names it) marked with a payload,
// so frontends can tell it from a full queue without parsing the message.
//
// Thread safety: pure functions.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"

namespace restkv::engine {

inline constexpr char kKvCapacityPayload[] = "restkv/kv-capacity";

inline absl::Status KvCapacityError(const std::string& message) {
  absl::Status status = absl::ResourceExhaustedError(message);
  status.SetPayload(kKvCapacityPayload, absl::Cord("1"));
  return status;
}

inline bool IsKvCapacityError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kResourceExhausted &&
         status.GetPayload(kKvCapacityPayload).has_value();
}

}  // namespace restkv::engine
