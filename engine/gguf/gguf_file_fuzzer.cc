// libFuzzer target for GgufFile::FromBuffer: any input must parse or fail
// with a Status, never crash, read out of bounds or trip a sanitizer. On
// success it touches every metadata accessor and every tensor byte (through
// DequantizeRow) and checks the invariants promised in gguf_file.h.
//
// Built and run by tests/fuzz/run_gguf_fuzzer.sh (clang, -fsanitize=fuzzer,
// address,undefined). Not part of the restkv_engine library.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/gguf/gguf_file.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/ggml_type.h"

namespace {

using restkv::engine::GgufFile;
using restkv::engine::GgufTensorInfo;
using restkv::engine::GgufValue;

// Volatile sink so the optimiser keeps the reads.
volatile size_t g_sink = 0;

void Require(bool ok) {
  if (!ok) __builtin_trap();
}

void TouchValue(const GgufValue& v) {
  g_sink = g_sink + v.ToString(4).size();
  if (v.is_integer()) g_sink = g_sink + static_cast<size_t>(v.as_unsigned()) + v.fits_int64();
  if (v.is_integer() || v.is_float()) g_sink = g_sink + (v.as_double() > 0);
  if (v.is_array()) {
    for (const GgufValue& item : v.items()) {
      Require(item.type() == v.element_type());
      TouchValue(item);
    }
  }
}

void TouchMetadata(const GgufFile& f) {
  for (const auto& kv : f.metadata()) {
    Require(f.Find(kv.key) == &kv.value);
    TouchValue(kv.value);
    // Every getter must answer with a value or a Status, whatever the type.
    g_sink = g_sink + f.GetString(kv.key).ok() + f.GetInt(kv.key).ok() + f.GetFloat(kv.key).ok() +
             f.GetBool(kv.key).ok() + f.GetStringArray(kv.key).ok() + f.GetIntArray(kv.key).ok() +
             f.GetFloatArray(kv.key).ok() + f.GetIntOr(kv.key, 1).ok() +
             f.GetFloatOr(kv.key, 1).ok() + f.GetBoolOr(kv.key, true).ok() +
             f.GetStringOr(kv.key, "d").ok();
  }
  Require(f.Find("fuzz.absent") != nullptr || f.GetIntOr("fuzz.absent", 7).value_or(0) == 7);
}

void TouchTensors(const GgufFile& f, std::string_view bytes) {
  const auto* begin = reinterpret_cast<const uint8_t*>(bytes.data());
  const auto* end = begin + bytes.size();
  std::vector<float> row;
  for (const GgufTensorInfo& t : f.tensors()) {
    Require(f.FindTensor(t.name) == &t);
    // Invariants from gguf_file.h.
    const restkv::kernels::GgmlTypeTraits* traits = restkv::kernels::GetGgmlTypeTraits(t.type);
    Require(traits != nullptr && traits->supported);
    Require(!t.dims.empty() && t.dims.size() <= 4 && t.dims[0] % traits->block_size == 0);
    int64_t n = 1;
    for (int64_t d : t.dims) {
      Require(d >= 1);
      n *= d;
    }
    Require(n == t.num_elements);
    Require(t.offset % f.alignment() == 0);
    Require(t.data >= begin && t.size_bytes <= end - t.data);
    // Read every byte, row by row.
    const int64_t row_bytes = restkv::kernels::RowBytes(t.type, t.dims[0]);
    const int64_t rows = t.num_elements / t.dims[0];
    Require(rows * row_bytes == t.size_bytes);
    row.resize(static_cast<size_t>(t.dims[0]));
    for (int64_t r = 0; r < rows; ++r) {
      restkv::kernels::DequantizeRow(t.type, t.data + r * row_bytes, row.data(), t.dims[0]);
      g_sink = g_sink + (row[0] > 0);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto file = GgufFile::FromBuffer(bytes, "fuzz.gguf");
  if (!file.ok()) {
    // Errors must say where: the file name always leads the message.
    Require(std::string_view(file.status().message().data(), file.status().message().size())
                .substr(0, 10) == "fuzz.gguf:");
    return 0;
  }
  TouchMetadata(**file);
  TouchTensors(**file, bytes);
  return 0;
}
