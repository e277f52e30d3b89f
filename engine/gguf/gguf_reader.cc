#include "engine/gguf/gguf_reader.h"

#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace restkv::engine {
namespace {

// Smallest encoding of one value of `type`, for bounding counts cheaply.
uint64_t MinValueBytes(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kString:
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kArray:
      return 12;  // u32 element type + u64 count
  }
  return 1;
}

}  // namespace

std::string GgufPrintable(std::string_view s) {
  return absl::CHexEscape(GgufAbslView(s.substr(0, 64))) + (s.size() > 64 ? "..." : "");
}

absl::Status GgufReader::Invalid(uint64_t at, std::string_view field, std::string_view what) const {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: offset %d: %s: %s", file_, at, field, what));
}

absl::Status GgufReader::Truncated(uint64_t at, std::string_view field,
                                   std::string_view what) const {
  return absl::DataLossError(absl::StrFormat("%s: offset %d: %s: %s", file_, at, field, what));
}

absl::Status GgufReader::CutOff(std::string_view field, size_t size) const {
  return Truncated(
      pos_, field,
      absl::StrFormat("file ends after %d bytes, %d-byte field cut off", bytes_.size(), size));
}

absl::StatusOr<std::string> GgufReader::ReadString(std::string_view field) {
  const uint64_t at = pos_;
  RESTKV_ASSIGN_OR_RETURN(const uint64_t len, Read<uint64_t>(field));
  if (len > kMaxStringBytes)
    return Invalid(at, field, absl::StrFormat("string length %d is absurd", len));
  if (len > remaining()) {
    return Truncated(at, field,
                     absl::StrFormat("string of %d bytes runs past the end of the file "
                                     "(%d bytes left)",
                                     len, remaining()));
  }
  std::string s(bytes_.data() + pos_, len);
  pos_ += len;
  return s;
}

absl::StatusOr<GgufType> GgufReader::ReadType(std::string_view field) {
  const uint64_t at = pos_;
  RESTKV_ASSIGN_OR_RETURN(const uint32_t id, Read<uint32_t>(field));
  if (id > kMaxGgufTypeId)
    return Invalid(at, field, absl::StrFormat("unknown value type id %d", id));
  return static_cast<GgufType>(id);
}

absl::StatusOr<GgufValue> GgufReader::ReadValue(GgufType type, std::string_view field, int depth) {
  const uint64_t at = pos_;
  switch (type) {
    case GgufType::kUint8:
      return ReadScalar<uint8_t>(type, field);
    case GgufType::kInt8:
      return ReadScalar<int8_t>(type, field);
    case GgufType::kUint16:
      return ReadScalar<uint16_t>(type, field);
    case GgufType::kInt16:
      return ReadScalar<int16_t>(type, field);
    case GgufType::kUint32:
      return ReadScalar<uint32_t>(type, field);
    case GgufType::kInt32:
      return ReadScalar<int32_t>(type, field);
    case GgufType::kUint64:
      return ReadScalar<uint64_t>(type, field);
    case GgufType::kInt64:
      return ReadScalar<int64_t>(type, field);
    case GgufType::kFloat32:
      return ReadScalar<float>(type, field);
    case GgufType::kFloat64:
      return ReadScalar<double>(type, field);
    case GgufType::kBool: {
      RESTKV_ASSIGN_OR_RETURN(const uint8_t b, Read<uint8_t>(field));
      if (b > 1) return Invalid(at, field, absl::StrFormat("bool byte is %d, not 0 or 1", b));
      return GgufValue::Bool(b == 1);
    }
    case GgufType::kString: {
      RESTKV_ASSIGN_OR_RETURN(std::string s, ReadString(field));
      return GgufValue::String(std::move(s));
    }
    case GgufType::kArray:
      return ReadArray(field, depth);
  }
  return Invalid(at, field, "unknown value type");  // unreachable: ReadType checked the id
}

template <typename T>
absl::StatusOr<GgufValue> GgufReader::ReadScalar(GgufType type, std::string_view field) {
  RESTKV_ASSIGN_OR_RETURN(const T v, Read<T>(field));
  if constexpr (std::is_floating_point_v<T>) {
    return GgufValue::Float(type, v);
  } else if constexpr (std::is_signed_v<T>) {
    return GgufValue::Signed(type, v);
  } else {
    return GgufValue::Unsigned(type, v);
  }
}

absl::StatusOr<GgufValue> GgufReader::ReadArray(std::string_view field, int depth) {
  const uint64_t at = pos_;
  if (depth >= kMaxArrayDepth) {
    return Invalid(at, field, absl::StrFormat("arrays nested more than %d deep", kMaxArrayDepth));
  }
  RESTKV_ASSIGN_OR_RETURN(const GgufType element_type, ReadType(field));
  const uint64_t count_at = pos_;
  RESTKV_ASSIGN_OR_RETURN(const uint64_t count, Read<uint64_t>(field));
  if (count > kMaxValues - values_) {
    return Invalid(count_at, field, absl::StrFormat("array count %d is absurd", count));
  }
  // Each item takes at least MinValueBytes: reject counts that cannot fit
  // before reserving memory for them.
  if (count > remaining() / MinValueBytes(element_type)) {
    return Truncated(count_at, field,
                     absl::StrFormat("array of %d %s items cannot fit in the %d bytes left", count,
                                     GgufTypeName(element_type), remaining()));
  }
  values_ += count;
  std::vector<GgufValue> items;
  items.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    RESTKV_ASSIGN_OR_RETURN(GgufValue item, ReadValue(element_type, field, depth + 1));
    items.push_back(std::move(item));
  }
  return GgufValue::Array(element_type, std::move(items));
}

}  // namespace restkv::engine
