#include "engine/gguf/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <numeric>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "engine/gguf/gguf_reader.h"

namespace restkv::engine {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
// Hard limits far beyond any real file, so that corrupt values fail with a
// clear message before they cost memory or stack.
constexpr uint64_t kMaxKvs = 1 << 20;
constexpr uint64_t kMaxTensors = 1 << 20;
constexpr uint32_t kMaxDims = 4;  // ggml's GGML_MAX_DIMS
constexpr uint64_t kMaxAlignment = 1 << 20;
constexpr int64_t kMaxElements = int64_t{1} << 50;  // per tensor; keeps byte sizes in int64

uint64_t AlignUp(uint64_t x, uint64_t alignment) {
  return (x + alignment - 1) / alignment * alignment;
}

// Reads one tensor-info record; checks what can be checked without the others.
absl::StatusOr<GgufTensorInfo> ReadTensorInfo(GgufReader& r, uint64_t index, uint64_t alignment) {
  GgufTensorInfo t;
  RESTKV_ASSIGN_OR_RETURN(t.name, r.ReadString(absl::StrFormat("tensor_infos[%d] name", index)));
  const std::string field = absl::StrFormat("tensor '%s'", GgufPrintable(t.name));

  // Shape: 1 to 4 dims, each >= 1, with an element count that fits.
  uint64_t at = r.pos();
  RESTKV_ASSIGN_OR_RETURN(const uint32_t n_dims, r.Read<uint32_t>(field + " n_dims"));
  if (n_dims == 0 || n_dims > kMaxDims) {
    return r.Invalid(at, field + " n_dims",
                     absl::StrFormat("%d dims (1 to %d supported)", n_dims, kMaxDims));
  }
  t.num_elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    at = r.pos();
    const std::string dim_field = absl::StrFormat("%s dims[%d]", field, d);
    RESTKV_ASSIGN_OR_RETURN(const uint64_t dim, r.Read<uint64_t>(dim_field));
    if (dim == 0 || dim > static_cast<uint64_t>(kMaxElements / t.num_elements)) {
      return r.Invalid(at, dim_field, absl::StrFormat("dimension %d is zero or absurd", dim));
    }
    t.dims.push_back(static_cast<int64_t>(dim));
    t.num_elements *= static_cast<int64_t>(dim);
  }

  // Element type: known to restkv, dequantisable, rows made of whole blocks.
  at = r.pos();
  RESTKV_ASSIGN_OR_RETURN(const uint32_t type_id, r.Read<uint32_t>(field + " type"));
  const kernels::GgmlTypeTraits* traits = kernels::GetGgmlTypeTraits(type_id);
  if (traits == nullptr || !traits->supported) {
    return r.Invalid(at, field + " type",
                     absl::StrFormat("ggml type id %d (%s) is not supported", type_id,
                                     traits != nullptr ? traits->name : "unknown"));
  }
  if (t.dims[0] % traits->block_size != 0) {
    return r.Invalid(at, field + " type",
                     absl::StrFormat("row length %d is not a multiple of the %s "
                                     "block size %d",
                                     t.dims[0], traits->name, traits->block_size));
  }
  t.type = static_cast<kernels::GgmlType>(type_id);
  t.size_bytes = t.num_elements / traits->block_size * traits->type_size;

  // Data offset, relative to the data section.
  at = r.pos();
  RESTKV_ASSIGN_OR_RETURN(t.offset, r.Read<uint64_t>(field + " offset"));
  if (t.offset % alignment != 0) {
    return r.Invalid(at, field + " offset",
                     absl::StrFormat("data offset %d is not a multiple of the "
                                     "alignment %d",
                                     t.offset, alignment));
  }
  return t;
}

}  // namespace

GgufFile::~GgufFile() {
  if (mapping_ != nullptr) munmap(mapping_, mapping_size_);
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string msg = absl::StrFormat("%s: cannot open: %s", path, std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(msg);
    if (err == EACCES) return absl::PermissionDeniedError(msg);
    return absl::InvalidArgumentError(msg);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrFormat("%s: not a regular file", path));
  }
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->name_ = path;
  // An empty file cannot be mapped; it parses (and fails) as an empty buffer.
  if (st.st_size > 0) {
    void* m = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: mmap failed: %s", path, std::strerror(err)));
    }
    f->mapping_ = m;
    f->mapping_size_ = static_cast<size_t>(st.st_size);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  RESTKV_RETURN_IF_ERROR(
      f->Parse(std::string_view(static_cast<const char*>(f->mapping_), f->mapping_size_)));
  return f;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::FromBuffer(std::string_view bytes,
                                                               std::string name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->name_ = std::move(name);
  RESTKV_RETURN_IF_ERROR(f->Parse(bytes));
  return f;
}

absl::Status GgufFile::Parse(std::string_view bytes) {
  GgufReader r(bytes, name_);

  // Header: magic, version, counts.
  RESTKV_ASSIGN_OR_RETURN(const uint32_t magic, r.Read<uint32_t>("header magic"));
  if (magic != kMagic) {
    return r.Invalid(0, "header magic",
                     absl::StrFormat("not a GGUF file (starts with %s, expected \"GGUF\")",
                                     GgufPrintable(bytes.substr(0, 4))));
  }
  RESTKV_ASSIGN_OR_RETURN(version_, r.Read<uint32_t>("header version"));
  if (version_ != 2 && version_ != 3) {
    const bool swapped = version_ == 0x02000000 || version_ == 0x03000000;
    return r.Invalid(4, "header version",
                     swapped
                         ? std::string("big-endian GGUF files are not supported")
                         : absl::StrFormat("version %d is not supported (2 and 3 are)", version_));
  }
  RESTKV_ASSIGN_OR_RETURN(const uint64_t num_tensors, r.Read<uint64_t>("header tensor_count"));
  RESTKV_ASSIGN_OR_RETURN(const uint64_t num_kvs, r.Read<uint64_t>("header kv_count"));
  if (num_tensors > kMaxTensors) {
    return r.Invalid(8, "header tensor_count",
                     absl::StrFormat("%d tensors is absurd", num_tensors));
  }
  if (num_kvs > kMaxKvs)
    return r.Invalid(16, "header kv_count", absl::StrFormat("%d keys is absurd", num_kvs));

  // Metadata: key, value type, value; keys unique.
  metadata_.reserve(std::min<uint64_t>(num_kvs, r.remaining() / 13));  // each kv takes >= 13 bytes
  for (uint64_t i = 0; i < num_kvs; ++i) {
    const uint64_t at = r.pos();
    RESTKV_ASSIGN_OR_RETURN(std::string key, r.ReadString(absl::StrFormat("metadata[%d] key", i)));
    const std::string field = absl::StrFormat("metadata '%s'", GgufPrintable(key));
    RESTKV_ASSIGN_OR_RETURN(const GgufType type, r.ReadType(field + " type"));
    RESTKV_ASSIGN_OR_RETURN(GgufValue value, r.ReadValue(type, field, 0));
    if (!key_index_.emplace(key, metadata_.size()).second)
      return r.Invalid(at, field, "duplicate key");
    metadata_.push_back({std::move(key), std::move(value)});
  }
  RESTKV_RETURN_IF_ERROR(ReadAlignment());

  // Tensor directory; names unique.
  tensors_.reserve(
      std::min<uint64_t>(num_tensors, r.remaining() / 32));  // each info takes >= 32 bytes
  for (uint64_t i = 0; i < num_tensors; ++i) {
    const uint64_t at = r.pos();
    RESTKV_ASSIGN_OR_RETURN(GgufTensorInfo t, ReadTensorInfo(r, i, alignment_));
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) {
      return r.Invalid(at, absl::StrFormat("tensor '%s'", GgufPrintable(t.name)),
                       "duplicate tensor name");
    }
    tensors_.push_back(std::move(t));
  }
  return PlaceTensors(bytes, r.pos());
}

absl::Status GgufFile::ReadAlignment() {
  const GgufValue* v = Find("general.alignment");
  if (v == nullptr) {
    alignment_ = kDefaultAlignment;
    return absl::OkStatus();
  }
  // The spec asks for a u32 power of two that is a multiple of 8; 8 also
  // keeps every block type's fields naturally aligned in place.
  const bool ok = v->is_integer() && v->fits_int64() && v->as_signed() >= 8 &&
                  static_cast<uint64_t>(v->as_signed()) <= kMaxAlignment &&
                  (v->as_unsigned() & (v->as_unsigned() - 1)) == 0;
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: metadata 'general.alignment': %s %s is not a power of two between 8 and %d", name_,
        GgufTypeName(v->type()), v->ToString(), kMaxAlignment));
  }
  alignment_ = v->as_unsigned();
  return absl::OkStatus();
}

absl::Status GgufFile::PlaceTensors(std::string_view bytes, uint64_t tensor_infos_end) {
  // The data section starts at the next multiple of the alignment.
  data_offset_ = AlignUp(tensor_infos_end, alignment_);
  if (tensors_.empty()) return absl::OkStatus();
  if (data_offset_ > bytes.size()) {
    return absl::DataLossError(absl::StrFormat(
        "%s: offset %d: data section: starts at %d, past the end of the file (%d bytes)", name_,
        tensor_infos_end, data_offset_, bytes.size()));
  }
  const uint64_t data_bytes = bytes.size() - data_offset_;

  // Walk the tensors by offset: each must end inside the file and start at
  // or after the end of the previous one.
  std::vector<size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  const GgufTensorInfo* prev = nullptr;
  for (size_t i : order) {
    GgufTensorInfo& t = tensors_[i];
    const uint64_t size = static_cast<uint64_t>(t.size_bytes);
    if (t.offset > data_bytes || size > data_bytes - t.offset) {
      return absl::DataLossError(absl::StrFormat(
          "%s: offset %d: tensor '%s' data: %d bytes at data offset %d run past the end of the "
          "file (%d bytes)",
          name_, data_offset_ + std::min(t.offset, data_bytes), GgufPrintable(t.name), size,
          t.offset, bytes.size()));
    }
    if (prev != nullptr && t.offset < prev->offset + static_cast<uint64_t>(prev->size_bytes)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: offset %d: tensor '%s' data: overlaps tensor '%s' (data offsets %d and %d)", name_,
          data_offset_ + t.offset, GgufPrintable(t.name), GgufPrintable(prev->name), t.offset,
          prev->offset));
    }
    t.data = reinterpret_cast<const uint8_t*>(bytes.data()) + data_offset_ + t.offset;
    prev = &t;
  }
  return absl::OkStatus();
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = key_index_.find(GgufAbslView(key));
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(GgufAbslView(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<const GgufValue*> GgufFile::Lookup(std::string_view key, std::string_view expected,
                                                  bool (*ok_type)(const GgufValue&)) const {
  const GgufValue* v = Find(key);
  if (v == nullptr)
    return absl::NotFoundError(absl::StrFormat("%s: metadata '%s' is missing", name_, key));
  if (!ok_type(*v)) {
    const std::string actual = v->is_array()
                                   ? absl::StrFormat("array of %s", GgufTypeName(v->element_type()))
                                   : std::string(GgufTypeName(v->type()));
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: metadata '%s' is %s, expected %s", name_, key, actual, expected));
  }
  return v;
}

absl::StatusOr<std::string> GgufFile::GetString(std::string_view key) const {
  RESTKV_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(key, "string", [](const GgufValue& v) {
                            return v.type() == GgufType::kString;
                          }));
  return v->as_string();
}

absl::StatusOr<int64_t> GgufFile::GetInt(std::string_view key) const {
  RESTKV_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(key, "an integer", [](const GgufValue& v) {
                            return v.is_integer();
                          }));
  if (!v->fits_int64()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: metadata '%s' = %d does not fit in int64", name_, key, v->as_unsigned()));
  }
  return v->as_signed();
}

absl::StatusOr<double> GgufFile::GetFloat(std::string_view key) const {
  RESTKV_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(key, "a number", [](const GgufValue& v) {
                            return v.is_integer() || v.is_float();
                          }));
  return v->as_double();
}

absl::StatusOr<bool> GgufFile::GetBool(std::string_view key) const {
  RESTKV_ASSIGN_OR_RETURN(const GgufValue* v, Lookup(key, "bool", [](const GgufValue& v) {
                            return v.type() == GgufType::kBool;
                          }));
  return v->as_bool();
}

absl::StatusOr<std::vector<std::string>> GgufFile::GetStringArray(std::string_view key) const {
  RESTKV_ASSIGN_OR_RETURN(const GgufValue* v,
                          Lookup(key, "array of string", [](const GgufValue& v) {
                            return v.is_array() && v.element_type() == GgufType::kString;
                          }));
  std::vector<std::string> out;
  out.reserve(v->size());
  for (const GgufValue& item : v->items()) out.push_back(item.as_string());
  return out;
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  RESTKV_ASSIGN_OR_RETURN(const GgufValue* v,
                          Lookup(key, "array of integers", [](const GgufValue& v) {
                            return v.is_array() && GgufTypeIsInteger(v.element_type());
                          }));
  std::vector<int64_t> out;
  out.reserve(v->size());
  for (const GgufValue& item : v->items()) {
    if (!item.fits_int64()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: metadata '%s' item %d = %d does not fit in int64", name_, key,
                          out.size(), item.as_unsigned()));
    }
    out.push_back(item.as_signed());
  }
  return out;
}

absl::StatusOr<std::vector<float>> GgufFile::GetFloatArray(std::string_view key) const {
  RESTKV_ASSIGN_OR_RETURN(
      const GgufValue* v, Lookup(key, "array of numbers", [](const GgufValue& v) {
        return v.is_array() &&
               (GgufTypeIsInteger(v.element_type()) || GgufTypeIsFloat(v.element_type()));
      }));
  std::vector<float> out;
  out.reserve(v->size());
  for (const GgufValue& item : v->items()) out.push_back(static_cast<float>(item.as_double()));
  return out;
}

absl::StatusOr<int64_t> GgufFile::GetIntOr(std::string_view key, int64_t def) const {
  if (Find(key) == nullptr) return def;
  return GetInt(key);
}
absl::StatusOr<double> GgufFile::GetFloatOr(std::string_view key, double def) const {
  if (Find(key) == nullptr) return def;
  return GetFloat(key);
}
absl::StatusOr<bool> GgufFile::GetBoolOr(std::string_view key, bool def) const {
  if (Find(key) == nullptr) return def;
  return GetBool(key);
}
absl::StatusOr<std::string> GgufFile::GetStringOr(std::string_view key, std::string def) const {
  if (Find(key) == nullptr) return def;
  return GetString(key);
}

void GgufFile::DropResidentPages(const void* data, size_t bytes) const {
  if (mapping_ == nullptr) return;
  const auto base = reinterpret_cast<uintptr_t>(mapping_);
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  // Only whole pages inside the range: neighbours may still be needed.
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) / page * page;
  if (begin < base || end > base + mapping_size_ || end <= begin) return;
  // MAP_SHARED read-only file pages: MADV_DONTNEED only unmaps them here.
  madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace restkv::engine
