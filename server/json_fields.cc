#include "server/json_fields.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "server/api_error.h"

namespace restkv::server {

using json = Json;

std::string TypeName(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number_float()) return "number";
  return v.type_name();  // "null", "boolean", "string", "array", "object"
}

const json* Field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status WrongType(std::string_view param, std::string_view expected, const json& got) {
  return InvalidParam(param,
                      absl::StrFormat("'%s' must be %s, got %s", param, expected, TypeName(got)));
}

absl::StatusOr<int64_t> AsInt(const json& v, std::string_view param, int64_t lo, int64_t hi) {
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    x = u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
            ? std::numeric_limits<int64_t>::max()
            : static_cast<int64_t>(u);
  } else if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else if (v.is_number_float() && std::isfinite(v.get<double>()) &&
             std::trunc(v.get<double>()) == v.get<double>() && std::fabs(v.get<double>()) < 9e15) {
    x = static_cast<int64_t>(v.get<double>());
  } else {
    return WrongType(param, "an integer", v);
  }
  if (x < lo || x > hi) {
    return InvalidParam(
        param, absl::StrFormat("'%s' must be in [%d, %d], got %s", param, lo, hi, v.dump()));
  }
  return x;
}

absl::Status GetInt(const json& obj, const char* key, int64_t lo, int64_t hi, int64_t* out) {
  const json* v = Field(obj, key);
  if (v == nullptr) return absl::OkStatus();
  RESTKV_ASSIGN_OR_RETURN(*out, AsInt(*v, key, lo, hi));
  return absl::OkStatus();
}

absl::Status GetInt32(const json& obj, const char* key, int64_t lo, int64_t hi, int32_t* out) {
  int64_t x = *out;
  RESTKV_RETURN_IF_ERROR(GetInt(obj, key, lo, hi, &x));
  *out = static_cast<int32_t>(x);
  return absl::OkStatus();
}

absl::Status GetFloat(const json& obj, const char* key, double lo, double hi, bool lo_open,
                      float* out) {
  const json* v = Field(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number()) return WrongType(key, "a number", *v);
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || (lo_open && x == lo) || x > hi) {
    return InvalidParam(key, absl::StrFormat("'%s' must be in %c%g, %g], got %s", key,
                                             lo_open ? '(' : '[', lo, hi, v->dump()));
  }
  *out = static_cast<float>(x);
  return absl::OkStatus();
}

absl::Status GetBool(const json& obj, const char* key, bool* out) {
  const json* v = Field(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) return WrongType(key, "a boolean", *v);
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status GetString(const json& obj, const char* key, std::string* out) {
  const json* v = Field(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) return WrongType(key, "a string", *v);
  *out = v->get<std::string>();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> AsTokenIds(const json& v, const std::string& param) {
  if (!v.is_array()) return WrongType(param, "an array of token ids", v);
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    RESTKV_ASSIGN_OR_RETURN(int64_t id, AsInt(v[i], absl::StrFormat("%s[%d]", param, i), 0,
                                              std::numeric_limits<int32_t>::max()));
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

}  // namespace restkv::server
