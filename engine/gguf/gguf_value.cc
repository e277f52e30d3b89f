#include "engine/gguf/gguf_value.h"

#include <limits>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/check.h"

namespace restkv::engine {
namespace {

bool IsSigned(GgufType t) {
  return t == GgufType::kInt8 || t == GgufType::kInt16 || t == GgufType::kInt32 ||
         t == GgufType::kInt64;
}

// Largest value of the unsigned type `t`, or the signed range of `t`.
uint64_t UnsignedMax(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
      return 0xff;
    case GgufType::kUint16:
      return 0xffff;
    case GgufType::kUint32:
      return 0xffffffffu;
    default:
      return std::numeric_limits<uint64_t>::max();
  }
}
int64_t SignedMax(GgufType t) {
  switch (t) {
    case GgufType::kInt8:
      return 0x7f;
    case GgufType::kInt16:
      return 0x7fff;
    case GgufType::kInt32:
      return 0x7fffffff;
    default:
      return std::numeric_limits<int64_t>::max();
  }
}

// Quotes `s`, escaping quotes, backslashes and control bytes, and cuts it
// after about `max_bytes` bytes without splitting a UTF-8 sequence.
std::string QuoteString(const std::string& s, size_t max_bytes) {
  size_t end = s.size();
  if (end > max_bytes) {
    end = max_bytes;
    // Back up over continuation bytes (10xxxxxx) to the start of a character.
    while (end > 0 && (static_cast<uint8_t>(s[end]) & 0xc0) == 0x80) --end;
  }
  std::string out = "\"";
  for (size_t i = 0; i < end; ++i) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += absl::StrFormat("\\x%02x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (end < s.size()) out += absl::StrFormat("…(%d bytes)", s.size());
  return out;
}

}  // namespace

std::string_view GgufTypeName(GgufType type) {
  static constexpr std::string_view kNames[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                                "int32",  "float32", "bool",   "string", "array",
                                                "uint64", "int64",   "float64"};
  const auto i = static_cast<uint32_t>(type);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

bool GgufTypeIsInteger(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kUint16:
    case GgufType::kInt16:
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kUint64:
    case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

bool GgufTypeIsFloat(GgufType type) {
  return type == GgufType::kFloat32 || type == GgufType::kFloat64;
}

GgufValue GgufValue::Unsigned(GgufType type, uint64_t v) {
  RESTKV_CHECK(GgufTypeIsInteger(type) && !IsSigned(type)) << GgufTypeName(type);
  RESTKV_CHECK_LE(v, UnsignedMax(type)) << GgufTypeName(type);
  GgufValue g;
  g.type_ = type;
  g.payload_ = v;
  return g;
}

GgufValue GgufValue::Signed(GgufType type, int64_t v) {
  RESTKV_CHECK(IsSigned(type)) << GgufTypeName(type);
  RESTKV_CHECK(v <= SignedMax(type) && v >= -SignedMax(type) - 1) << GgufTypeName(type) << " " << v;
  GgufValue g;
  g.type_ = type;
  g.payload_ = v;
  return g;
}

GgufValue GgufValue::Float(GgufType type, double v) {
  RESTKV_CHECK(GgufTypeIsFloat(type)) << GgufTypeName(type);
  GgufValue g;
  g.type_ = type;
  // A float32 value is stored rounded, so reading it back gives the same.
  g.payload_ = type == GgufType::kFloat32 ? static_cast<double>(static_cast<float>(v)) : v;
  return g;
}

GgufValue GgufValue::Bool(bool v) {
  GgufValue g;
  g.type_ = GgufType::kBool;
  g.payload_ = v;
  return g;
}

GgufValue GgufValue::String(std::string v) {
  GgufValue g;
  g.type_ = GgufType::kString;
  g.payload_ = std::move(v);
  return g;
}

GgufValue GgufValue::Array(GgufType element_type, std::vector<GgufValue> items) {
  RESTKV_CHECK_LE(static_cast<uint32_t>(element_type), kMaxGgufTypeId);
  for (const GgufValue& item : items) {
    RESTKV_CHECK(item.type() == element_type)
        << "array of " << GgufTypeName(element_type) << " holds a " << GgufTypeName(item.type());
  }
  GgufValue g;
  g.type_ = GgufType::kArray;
  g.element_type_ = element_type;
  g.payload_ = std::move(items);
  return g;
}

uint64_t GgufValue::as_unsigned() const {
  RESTKV_CHECK(is_integer()) << GgufTypeName(type_);
  return IsSigned(type_) ? static_cast<uint64_t>(std::get<int64_t>(payload_))
                         : std::get<uint64_t>(payload_);
}

int64_t GgufValue::as_signed() const {
  RESTKV_CHECK(is_integer()) << GgufTypeName(type_);
  return IsSigned(type_) ? std::get<int64_t>(payload_)
                         : static_cast<int64_t>(std::get<uint64_t>(payload_));
}

bool GgufValue::fits_int64() const {
  RESTKV_CHECK(is_integer()) << GgufTypeName(type_);
  return IsSigned(type_) ||
         std::get<uint64_t>(payload_) <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

double GgufValue::as_double() const {
  if (is_float()) return std::get<double>(payload_);
  RESTKV_CHECK(is_integer()) << GgufTypeName(type_);
  return IsSigned(type_) ? static_cast<double>(std::get<int64_t>(payload_))
                         : static_cast<double>(std::get<uint64_t>(payload_));
}

bool GgufValue::as_bool() const {
  RESTKV_CHECK(type_ == GgufType::kBool) << GgufTypeName(type_);
  return std::get<bool>(payload_);
}

const std::string& GgufValue::as_string() const {
  RESTKV_CHECK(type_ == GgufType::kString) << GgufTypeName(type_);
  return std::get<std::string>(payload_);
}

GgufType GgufValue::element_type() const {
  RESTKV_CHECK(is_array()) << GgufTypeName(type_);
  return element_type_;
}

const std::vector<GgufValue>& GgufValue::items() const {
  RESTKV_CHECK(is_array()) << GgufTypeName(type_);
  return std::get<std::vector<GgufValue>>(payload_);
}

std::string GgufValue::ToString(size_t max_items) const {
  switch (type_) {
    case GgufType::kBool:
      return as_bool() ? "true" : "false";
    case GgufType::kString:
      return QuoteString(as_string(), 80);
    case GgufType::kFloat32:
    case GgufType::kFloat64:
      return absl::StrFormat("%g", as_double());
    case GgufType::kArray: {
      std::vector<std::string> parts;
      const std::vector<GgufValue>& v = items();
      for (size_t i = 0; i < v.size() && i < max_items; ++i)
        parts.push_back(v[i].ToString(max_items));
      if (v.size() > max_items) parts.push_back("…");
      return absl::StrFormat("array<%s>[%d] [%s]", GgufTypeName(element_type_), v.size(),
                             absl::StrJoin(parts, ", "));
    }
    default:
      return IsSigned(type_) ? absl::StrFormat("%d", as_signed())
                             : absl::StrFormat("%d", as_unsigned());
  }
}

}  // namespace restkv::engine
