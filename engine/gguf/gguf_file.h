// GgufFile: a read-only view of a GGUF (v2 or v3) model file: its metadata,
// its tensor directory and the tensor data, mapped into memory, never copied.
//
// File layout (all little-endian; str = u64 length + bytes, no NUL):
//
//   magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x     { str key | u32 value_type | value }
//   tensor_count x { str name | u32 n_dims | u64 dims[n_dims] | u32 ggml_type | u64 offset }
//   padding to `alignment` (general.alignment, default 32)
//   data section: tensor i at data_offset() + offset_i, each offset aligned
//
// Validation: every structural problem is an error that names the file, the
// byte offset and the field (e.g. "m.gguf: offset 24: metadata[0] key: ...").
// Codes: DataLoss when the bytes run out (truncation, a length or a tensor
// that reaches past the end); InvalidArgument for everything else (bad magic,
// unsupported version, absurd counts, unknown value or tensor type ids,
// unsupported tensor types, misaligned or overlapping tensors, duplicate keys
// or tensor names). Parsing never crashes or over-allocates on any input; it
// is fuzzed by gguf_file_fuzzer.cc.
//
// Invariants after a successful parse: every tensor has 1 to 4 dims, each
// >= 1; a type that GetGgmlTypeTraits() marks supported; dims[0] a multiple
// of its block size; `data` aligned to alignment() relative to the data
// section and fully inside the buffer; no two tensors overlap.
//
// Ownership: tensor `data` pointers point into the mapping (Open) or into the
// caller's buffer (FromBuffer) and are valid as long as the GgufFile (and,
// for FromBuffer, the buffer) lives.
// Thread safety: immutable after construction; safe to share.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/gguf/gguf_value.h"
#include "kernels/ggml_type.h"

namespace restkv::engine {

struct GgufKv {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the contiguous (innermost) dimension
  kernels::GgmlType type = kernels::GgmlType::kF32;
  uint64_t offset = 0;            // from the start of the data section
  const uint8_t* data = nullptr;  // points into the mapping / buffer
  int64_t num_elements = 0;
  int64_t size_bytes = 0;
};

class GgufFile {
 public:
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  // Maps `path` read-only and parses it. Errors: NotFound (no such file),
  // PermissionDenied (unreadable), InvalidArgument (not a regular file, mmap
  // failed) and the parse errors described at the top.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses `bytes` in place (not copied; the caller keeps them alive while
  // the result lives). `name` stands for the file in error messages.
  static absl::StatusOr<std::unique_ptr<GgufFile>> FromBuffer(std::string_view bytes,
                                                              std::string name);

  [[nodiscard]] uint32_t version() const { return version_; }
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] uint64_t alignment() const { return alignment_; }
  // Byte offset of the data section from the start of the file.
  [[nodiscard]] uint64_t data_offset() const { return data_offset_; }
  [[nodiscard]] const std::vector<GgufKv>& metadata() const { return metadata_; }  // file order
  [[nodiscard]] const GgufValue* Find(std::string_view key) const;  // nullptr if absent

  // Typed getters. NotFound if the key is absent; InvalidArgument naming the
  // key, the expected and the actual type if the value does not fit.
  absl::StatusOr<std::string> GetString(std::string_view key) const;
  // Any integer type; a uint64 above INT64_MAX is InvalidArgument.
  absl::StatusOr<int64_t> GetInt(std::string_view key) const;
  // float32, float64 or any integer type.
  absl::StatusOr<double> GetFloat(std::string_view key) const;
  absl::StatusOr<bool> GetBool(std::string_view key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(std::string_view key) const;
  // Any integer element type (uint64 items above INT64_MAX: InvalidArgument).
  absl::StatusOr<std::vector<int64_t>> GetIntArray(std::string_view key) const;
  // float32, float64 or integer elements, converted to float.
  absl::StatusOr<std::vector<float>> GetFloatArray(std::string_view key) const;
  // The same, returning `def` when the key is absent (a present key of the
  // wrong type is still InvalidArgument).
  absl::StatusOr<int64_t> GetIntOr(std::string_view key, int64_t def) const;
  absl::StatusOr<double> GetFloatOr(std::string_view key, double def) const;
  absl::StatusOr<bool> GetBoolOr(std::string_view key, bool def) const;
  absl::StatusOr<std::string> GetStringOr(std::string_view key, std::string def) const;

  [[nodiscard]] const std::vector<GgufTensorInfo>& tensors() const {
    return tensors_;
  }                                                                             // file order
  [[nodiscard]] const GgufTensorInfo* FindTensor(std::string_view name) const;  // nullptr if absent

  // Drops the resident pages of [data, data + bytes) (inside a tensor) from
  // this process's memory when the file is mmapped: for tensors the backend
  // has copied into its own form, so RSS holds the weights once. Safe:
  // a later read faults the pages back in from the file. No-op for
  // FromBuffer files.
  void DropResidentPages(const void* data, size_t bytes) const;

 private:
  GgufFile() = default;
  absl::Status Parse(std::string_view bytes);
  absl::Status ReadAlignment();
  absl::Status PlaceTensors(std::string_view bytes, uint64_t tensor_infos_end);
  // The value of `key` if present and `ok_type(value)`; errors as the getters.
  absl::StatusOr<const GgufValue*> Lookup(std::string_view key, std::string_view expected,
                                          bool (*ok_type)(const GgufValue&)) const;

  std::string name_;
  void* mapping_ = nullptr;  // from mmap, owned; nullptr for FromBuffer or empty files
  size_t mapping_size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKv> metadata_;
  absl::flat_hash_map<std::string, size_t> key_index_;  // key -> index in metadata_
  std::vector<GgufTensorInfo> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;  // name -> index in tensors_
};

}  // namespace restkv::engine
