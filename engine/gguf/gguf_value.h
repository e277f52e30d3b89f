// GgufValue: one GGUF metadata value (a scalar, a string or an array), as
// read by GgufFile and written by GgufWriter.
//
// A value keeps its exact GGUF type, so a file written back by GgufWriter has
// the same bytes. Arrays keep their element type; every item of an array has
// exactly that type, and arrays of arrays are allowed (items of any type).
//
// Accessors have REQUIRES on the type; calling the wrong one is a programmer
// error (RESTKV_CHECK). Code that reads untrusted files should use the typed
// getters of GgufFile, which return a Status instead.
// Thread safety: immutable after construction; safe to share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace restkv::engine {

// Value type ids as stored in GGUF files.
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
inline constexpr uint32_t kMaxGgufTypeId = 12;

// "uint8", "string", ... ; "unknown" for ids outside the enum.
std::string_view GgufTypeName(GgufType type);
// True for the eight integer types.
bool GgufTypeIsInteger(GgufType type);
// True for float32 and float64.
bool GgufTypeIsFloat(GgufType type);

class GgufValue {
 public:
  GgufValue() = default;  // uint8 0

  // REQUIRES: `type` is an unsigned integer type and `v` fits in it.
  static GgufValue Unsigned(GgufType type, uint64_t v);
  // REQUIRES: `type` is a signed integer type and `v` fits in it.
  static GgufValue Signed(GgufType type, int64_t v);
  // REQUIRES: `type` is kFloat32 or kFloat64.
  static GgufValue Float(GgufType type, double v);
  static GgufValue Bool(bool v);
  static GgufValue String(std::string v);
  // REQUIRES: every item has type `element_type`.
  static GgufValue Array(GgufType element_type, std::vector<GgufValue> items);

  [[nodiscard]] GgufType type() const { return type_; }
  [[nodiscard]] bool is_integer() const { return GgufTypeIsInteger(type_); }
  [[nodiscard]] bool is_float() const { return GgufTypeIsFloat(type_); }
  [[nodiscard]] bool is_array() const { return type_ == GgufType::kArray; }

  // REQUIRES: is_integer(). The value as uint64 / int64; a value outside the
  // target's range wraps (check fits_int64() first where that matters).
  [[nodiscard]] uint64_t as_unsigned() const;
  [[nodiscard]] int64_t as_signed() const;
  // REQUIRES: is_integer(). False only for uint64 values above INT64_MAX.
  [[nodiscard]] bool fits_int64() const;
  // REQUIRES: is_integer() || is_float().
  [[nodiscard]] double as_double() const;
  // REQUIRES: type() == kBool.
  [[nodiscard]] bool as_bool() const;
  // REQUIRES: type() == kString. Bytes as stored (UTF-8 by the spec, not
  // validated).
  [[nodiscard]] const std::string& as_string() const;

  // REQUIRES for the three: is_array().
  [[nodiscard]] GgufType element_type() const;
  [[nodiscard]] size_t size() const { return items().size(); }
  [[nodiscard]] const std::vector<GgufValue>& items() const;

  // One-line human-readable rendering for `restkv info`: strings quoted with
  // control characters escaped and cut after ~80 bytes (at a UTF-8 boundary);
  // arrays as `array<T>[n] [a, b, …]` showing at most `max_items` items.
  [[nodiscard]] std::string ToString(size_t max_items = 8) const;

 private:
  // NOTE(restkv): one variant instead of a field per kind keeps a value at
  // 48 bytes; tokenizer arrays hold ~10^5 of them.
  using Payload =
      std::variant<uint64_t, int64_t, double, bool, std::string, std::vector<GgufValue>>;

  GgufType type_ = GgufType::kUint8;
  GgufType element_type_ = GgufType::kUint8;  // arrays only
  Payload payload_ = uint64_t{0};
};

}  // namespace restkv::engine
