// GgufReader: the bounds-checked little-endian cursor GgufFile parses with.
// It decodes GGUF primitives and metadata values (scalars, strings, arrays,
// nested arrays) and turns every problem into a Status that names the file,
// the byte offset where the offending field starts, and the field:
//
//   "<file>: offset <n>: <field>: <what>"
//
// DataLoss when the bytes run out, InvalidArgument for bad values. Lengths
// and counts are checked against the bytes left before anything is
// allocated, and arrays nest at most kMaxArrayDepth deep, so no input can
// exhaust memory or stack. Internal to GgufFile; not a public API.
// Thread safety: none; one reader per parse. `bytes` and `file` must
// outlive the reader.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/gguf/gguf_value.h"

namespace restkv::engine {

// Debian's Abseil has its own string_view type, not an alias of std's.
inline absl::string_view GgufAbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// A key or tensor name as it may appear in a message: escaped, and cut
// after 64 bytes.
std::string GgufPrintable(std::string_view s);

class GgufReader {
 public:
  // Limits far beyond any real file (the largest vocabularies have ~10^6
  // metadata values in all), so corrupt values fail with a clear message.
  static constexpr uint64_t kMaxStringBytes = 1ULL << 32;
  static constexpr uint64_t kMaxValues = 1 << 24;  // array items in the whole file
  static constexpr int kMaxArrayDepth = 8;

  GgufReader(std::string_view bytes, const std::string& file) : bytes_(bytes), file_(file) {}

  [[nodiscard]] uint64_t pos() const { return pos_; }
  [[nodiscard]] uint64_t remaining() const { return bytes_.size() - pos_; }

  // Errors about `field`, which starts at byte `at`.
  [[nodiscard]] absl::Status Invalid(uint64_t at, std::string_view field,
                                     std::string_view what) const;
  [[nodiscard]] absl::Status Truncated(uint64_t at, std::string_view field,
                                       std::string_view what) const;

  // A fixed-size little-endian value. DataLoss if the bytes run out.
  template <typename T>
  absl::StatusOr<T> Read(std::string_view field) {
    if (remaining() < sizeof(T)) return CutOff(field, sizeof(T));
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  // u64 length + bytes. InvalidArgument if the length is absurd, DataLoss if
  // it runs past the end.
  absl::StatusOr<std::string> ReadString(std::string_view field);
  // A u32 value-type id. InvalidArgument if it names no GGUF type.
  absl::StatusOr<GgufType> ReadType(std::string_view field);
  // One value of `type`; `depth` counts the arrays around it.
  absl::StatusOr<GgufValue> ReadValue(GgufType type, std::string_view field, int depth = 0);

 private:
  absl::Status CutOff(std::string_view field, size_t size) const;
  template <typename T>
  absl::StatusOr<GgufValue> ReadScalar(GgufType type, std::string_view field);
  absl::StatusOr<GgufValue> ReadArray(std::string_view field, int depth);

  std::string_view bytes_;
  const std::string& file_;
  uint64_t pos_ = 0;
  uint64_t values_ = 0;  // array items read so far
};

}  // namespace restkv::engine
