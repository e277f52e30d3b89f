// JsonValue: a parsed JSON document, for the JSON Schema front end.
//
// The engine core may not include a JSON library (tests/layering/), and the
// schema compiler needs only a read-only tree, so this is a small strict
// RFC 8259 parser: objects keep their members in document order (property
// order decides the order the grammar emits them in), duplicate keys are an
// error, numbers keep their source text next to their double value (so
// `const: 1.50` is emitted as written).
//
// Thread safety: a plain value.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace restkv::engine::structured {

class JsonValue {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  JsonValue() = default;

  // The document in `text`, or InvalidArgument naming the byte offset and
  // what was expected there. Nesting deeper than 128 is an error too.
  static absl::StatusOr<JsonValue> Parse(std::string_view text);

  [[nodiscard]] Kind kind() const { return kind_; }
  [[nodiscard]] bool is_null() const { return kind_ == Kind::kNull; }
  [[nodiscard]] bool is_bool() const { return kind_ == Kind::kBool; }
  [[nodiscard]] bool is_number() const { return kind_ == Kind::kNumber; }
  [[nodiscard]] bool is_string() const { return kind_ == Kind::kString; }
  [[nodiscard]] bool is_array() const { return kind_ == Kind::kArray; }
  [[nodiscard]] bool is_object() const { return kind_ == Kind::kObject; }

  // REQUIRES for each getter: the matching kind.
  [[nodiscard]] bool bool_value() const { return bool_; }
  [[nodiscard]] double number() const { return number_; }
  [[nodiscard]] const std::string& string() const { return text_; }  // decoded, UTF-8
  [[nodiscard]] const std::vector<JsonValue>& array() const { return items_; }
  [[nodiscard]] const std::vector<std::pair<std::string, JsonValue>>& members() const {
    return members_;
  }

  // The member named `key` of an object, or nullptr (also for non-objects).
  [[nodiscard]] const JsonValue* Find(std::string_view key) const;

  // Compact serialisation (no spaces; strings escape only `"`, `\` and
  // control characters; numbers as written in the source).
  [[nodiscard]] std::string Serialize() const;

 private:
  friend class JsonParser;
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  double number_ = 0;
  std::string text_;  // string value, or a number's source text
  std::vector<JsonValue> items_;
  std::vector<std::pair<std::string, JsonValue>> members_;
};

// `s` as a JSON string literal, quotes included (escaping as Serialize()).
std::string JsonQuote(std::string_view s);

}  // namespace restkv::engine::structured
