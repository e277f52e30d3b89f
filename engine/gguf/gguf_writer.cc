#include "engine/gguf/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/check.h"

namespace restkv::engine {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" as a little-endian u32
constexpr uint32_t kVersion = 3;

// Appends `v` little-endian (restkv only builds for little-endian hosts).
template <typename T>
void Put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void PutString(std::string& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out += s;
}

void PutValue(std::string& out, const GgufValue& v) {
  switch (v.type()) {
    case GgufType::kUint8:
      Put<uint8_t>(out, static_cast<uint8_t>(v.as_unsigned()));
      break;
    case GgufType::kInt8:
      Put<int8_t>(out, static_cast<int8_t>(v.as_signed()));
      break;
    case GgufType::kUint16:
      Put<uint16_t>(out, static_cast<uint16_t>(v.as_unsigned()));
      break;
    case GgufType::kInt16:
      Put<int16_t>(out, static_cast<int16_t>(v.as_signed()));
      break;
    case GgufType::kUint32:
      Put<uint32_t>(out, static_cast<uint32_t>(v.as_unsigned()));
      break;
    case GgufType::kInt32:
      Put<int32_t>(out, static_cast<int32_t>(v.as_signed()));
      break;
    case GgufType::kUint64:
      Put<uint64_t>(out, v.as_unsigned());
      break;
    case GgufType::kInt64:
      Put<int64_t>(out, v.as_signed());
      break;
    case GgufType::kFloat32:
      Put<float>(out, static_cast<float>(v.as_double()));
      break;
    case GgufType::kFloat64:
      Put<double>(out, v.as_double());
      break;
    case GgufType::kBool:
      Put<uint8_t>(out, v.as_bool() ? 1 : 0);
      break;
    case GgufType::kString:
      PutString(out, v.as_string());
      break;
    case GgufType::kArray:
      Put<uint32_t>(out, static_cast<uint32_t>(v.element_type()));
      Put<uint64_t>(out, v.size());
      for (const GgufValue& item : v.items()) PutValue(out, item);
      break;
  }
}

uint64_t AlignUp(uint64_t x, uint64_t alignment) {
  return (x + alignment - 1) / alignment * alignment;
}

}  // namespace

void GgufWriter::SetAlignment(uint64_t alignment) {
  RESTKV_CHECK(alignment >= 8 && alignment <= 0xffffffffu && (alignment & (alignment - 1)) == 0)
      << "alignment " << alignment;
  alignment_ = alignment;
}

void GgufWriter::Add(std::string key, GgufValue value) {
  RESTKV_CHECK(key != "general.alignment") << "use SetAlignment";
  for (const auto& kv : kvs_) RESTKV_CHECK(kv.first != key) << "duplicate key " << key;
  kvs_.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::AddStringArray(std::string key, const std::vector<std::string>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (const std::string& s : v) items.push_back(GgufValue::String(s));
  AddArray(std::move(key), GgufType::kString, std::move(items));
}

void GgufWriter::AddInt32Array(std::string key, const std::vector<int32_t>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (int32_t x : v) items.push_back(GgufValue::Signed(GgufType::kInt32, x));
  AddArray(std::move(key), GgufType::kInt32, std::move(items));
}

void GgufWriter::AddFloat32Array(std::string key, const std::vector<float>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (float x : v) items.push_back(GgufValue::Float(GgufType::kFloat32, x));
  AddArray(std::move(key), GgufType::kFloat32, std::move(items));
}

void GgufWriter::AddTensor(std::string name, std::vector<int64_t> dims, kernels::GgmlType type,
                           std::string bytes) {
  RESTKV_CHECK(!dims.empty() && dims.size() <= 4)
      << "tensor " << name << " has " << dims.size() << " dims";
  int64_t rows = 1;
  for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
  for (int64_t d : dims) RESTKV_CHECK_GE(d, 1) << "tensor " << name;
  RESTKV_CHECK_EQ(static_cast<int64_t>(bytes.size()), rows * kernels::RowBytes(type, dims[0]))
      << "tensor " << name;
  for (const Tensor& t : tensors_) RESTKV_CHECK(t.name != name) << "duplicate tensor " << name;
  tensors_.push_back({std::move(name), std::move(dims), type, std::move(bytes)});
}

std::string GgufWriter::ToBytes() const {
  std::string out;
  // Header.
  const bool custom_alignment = alignment_ != 32;
  Put<uint32_t>(out, kMagic);
  Put<uint32_t>(out, kVersion);
  Put<uint64_t>(out, tensors_.size());
  Put<uint64_t>(out, kvs_.size() + (custom_alignment ? 1 : 0));

  // Metadata.
  if (custom_alignment) {
    PutString(out, "general.alignment");
    Put<uint32_t>(out, static_cast<uint32_t>(GgufType::kUint32));
    Put<uint32_t>(out, static_cast<uint32_t>(alignment_));
  }
  for (const auto& [key, value] : kvs_) {
    PutString(out, key);
    Put<uint32_t>(out, static_cast<uint32_t>(value.type()));
    PutValue(out, value);
  }

  // Tensor directory; offsets are relative to the data section.
  std::vector<uint64_t> offsets;
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    PutString(out, t.name);
    Put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) Put<uint64_t>(out, static_cast<uint64_t>(d));
    Put<uint32_t>(out, static_cast<uint32_t>(t.type));
    Put<uint64_t>(out, offset);
    offsets.push_back(offset);
    offset = AlignUp(offset + t.bytes.size(), alignment_);
  }

  // Data section: aligned start, each tensor at its offset, zero padding.
  out.resize(AlignUp(out.size(), alignment_), '\0');
  const size_t data_start = out.size();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    out.resize(data_start + offsets[i], '\0');
    out += tensors_[i].bytes;
  }
  return out;
}

absl::Status GgufWriter::WriteFile(const std::string& path) const {
  const std::string bytes = ToBytes();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    const int err = errno;
    const std::string msg = absl::StrFormat("%s: cannot create: %s", path, std::strerror(err));
    if (err == EACCES) return absl::PermissionDeniedError(msg);
    if (err == ENOENT) return absl::NotFoundError(msg);
    return absl::InternalError(msg);
  }
  const size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const bool closed = std::fclose(f) == 0;
  if (written != bytes.size() || !closed) {
    return absl::InternalError(
        absl::StrFormat("%s: write failed after %d of %d bytes", path, written, bytes.size()));
  }
  return absl::OkStatus();
}

}  // namespace restkv::engine
