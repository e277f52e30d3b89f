// Typed access to the fields of a JSON request body, with errors that name
// the field: each helper returns InvalidArgument carrying the field as its
// param payload (api_error.h), e.g. "'top_p' must be in (0, 1], got 0".
//
// OpenAI treats an explicit null like an absent field, so the Get* helpers
// leave *out unchanged for both. Numbers follow pydantic's lax mode, which
// vLLM's server uses: an integer field also accepts a float with no
// fractional part (2.0), and a float field accepts integers.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/json.h"

namespace restkv::server {

// "integer", "number", "string", "boolean", "array", "object" or "null".
std::string TypeName(const Json& v);

// The member `key` of object `obj`, or nullptr when absent or null.
const Json* Field(const Json& obj, const char* key);

// "'<param>' must be <expected>, got <type>".
absl::Status WrongType(std::string_view param, std::string_view expected, const Json& got);

// `v` as an integer in [lo, hi].
absl::StatusOr<int64_t> AsInt(const Json& v, std::string_view param, int64_t lo, int64_t hi);
// `v` as token ids, each in [0, 2^31); elements are named "<param>[i]". The
// vocabulary check is the caller's.
absl::StatusOr<std::vector<int32_t>> AsTokenIds(const Json& v, const std::string& param);

// Optional members of `obj`, range-checked; *out is untouched when absent.
absl::Status GetInt(const Json& obj, const char* key, int64_t lo, int64_t hi, int64_t* out);
absl::Status GetInt32(const Json& obj, const char* key, int64_t lo, int64_t hi, int32_t* out);
// A finite number in [lo, hi], or (lo, hi] when lo_open.
absl::Status GetFloat(const Json& obj, const char* key, double lo, double hi, bool lo_open,
                      float* out);
absl::Status GetBool(const Json& obj, const char* key, bool* out);
absl::Status GetString(const Json& obj, const char* key, std::string* out);

}  // namespace restkv::server
