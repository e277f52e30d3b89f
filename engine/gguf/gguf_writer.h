// GgufWriter: builds a GGUF v3 file in memory, for tests, fuzz seeds and
// synthetic models. Keys and tensors are written in the order added; tensor
// data is laid out back to back, each tensor padded to the alignment, so the
// file reads back through GgufFile (and llama.cpp) unchanged.
//
// Misuse (a tensor whose bytes do not match its shape, a duplicate key or
// tensor name, a bad alignment) is a programmer error: RESTKV_CHECK.
// Thread safety: none; use one writer per thread.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "engine/gguf/gguf_value.h"
#include "kernels/ggml_type.h"

namespace restkv::engine {

class GgufWriter {
 public:
  // REQUIRES: a power of two >= 8. Default 32; written as the first key,
  // general.alignment (uint32), when different from 32.
  void SetAlignment(uint64_t alignment);

  // Any value, including arrays of any element type and nested arrays
  // (built with GgufValue::Array). REQUIRES: `key` not added before.
  void Add(std::string key, GgufValue value);
  // An array of `element_type` items (each item must have that type).
  void AddArray(std::string key, GgufType element_type, std::vector<GgufValue> items) {
    Add(std::move(key), GgufValue::Array(element_type, std::move(items)));
  }

  void AddString(std::string key, std::string v) {
    Add(std::move(key), GgufValue::String(std::move(v)));
  }
  void AddBool(std::string key, bool v) { Add(std::move(key), GgufValue::Bool(v)); }
  void AddUint8(std::string key, uint8_t v) {
    Add(std::move(key), GgufValue::Unsigned(GgufType::kUint8, v));
  }
  void AddInt8(std::string key, int8_t v) {
    Add(std::move(key), GgufValue::Signed(GgufType::kInt8, v));
  }
  void AddUint16(std::string key, uint16_t v) {
    Add(std::move(key), GgufValue::Unsigned(GgufType::kUint16, v));
  }
  void AddInt16(std::string key, int16_t v) {
    Add(std::move(key), GgufValue::Signed(GgufType::kInt16, v));
  }
  void AddUint32(std::string key, uint32_t v) {
    Add(std::move(key), GgufValue::Unsigned(GgufType::kUint32, v));
  }
  void AddInt32(std::string key, int32_t v) {
    Add(std::move(key), GgufValue::Signed(GgufType::kInt32, v));
  }
  void AddUint64(std::string key, uint64_t v) {
    Add(std::move(key), GgufValue::Unsigned(GgufType::kUint64, v));
  }
  void AddInt64(std::string key, int64_t v) {
    Add(std::move(key), GgufValue::Signed(GgufType::kInt64, v));
  }
  void AddFloat32(std::string key, float v) {
    Add(std::move(key), GgufValue::Float(GgufType::kFloat32, v));
  }
  void AddFloat64(std::string key, double v) {
    Add(std::move(key), GgufValue::Float(GgufType::kFloat64, v));
  }
  void AddStringArray(std::string key, const std::vector<std::string>& v);
  void AddInt32Array(std::string key, const std::vector<int32_t>& v);
  void AddFloat32Array(std::string key, const std::vector<float>& v);

  // `dims` in ggml order (dims[0] contiguous), 1 to 4 of them, each >= 1.
  // REQUIRES: dims[0] % block_size == 0, bytes.size() equals the GGML size
  // of dims/type (rows * RowBytes(type, dims[0])), and `name` is new.
  void AddTensor(std::string name, std::vector<int64_t> dims, kernels::GgmlType type,
                 std::string bytes);

  // The whole file.
  [[nodiscard]] std::string ToBytes() const;
  // Writes ToBytes() to `path`. Errors: PermissionDenied / NotFound / Internal
  // from the file system, named with the path.
  absl::Status WriteFile(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;
    kernels::GgmlType type;
    std::string bytes;
  };

  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kvs_;
  std::vector<Tensor> tensors_;
};

}  // namespace restkv::engine
