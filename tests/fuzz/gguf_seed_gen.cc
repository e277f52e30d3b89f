// Writes the seed corpus for gguf_file_fuzzer: small valid GGUF files made
// with GgufWriter that between them use every metadata value type, nested
// arrays, custom alignment, GGUF v2, and a tensor of every supported type.
//
// Usage: gguf_seed_gen OUT_DIR   (the directory must exist)
#include <cstdio>
#include <string>
#include <vector>

#include "engine/gguf/gguf_writer.h"
#include "kernels/cpu/quantize_ref.h"
#include "kernels/ggml_type.h"

namespace {

using restkv::engine::GgufType;
using restkv::engine::GgufValue;
using restkv::engine::GgufWriter;
using restkv::kernels::GgmlType;

bool Write(const std::string& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

std::string AllValueTypes() {
  GgufWriter w;
  w.AddUint8("u8", 1);
  w.AddInt8("i8", -1);
  w.AddUint16("u16", 2);
  w.AddInt16("i16", -2);
  w.AddUint32("u32", 3);
  w.AddInt32("i32", -3);
  w.AddUint64("u64", 4);
  w.AddInt64("i64", -4);
  w.AddFloat32("f32", 0.5f);
  w.AddFloat64("f64", 0.25);
  w.AddBool("bool", true);
  w.AddString("str", "héllo");
  w.AddStringArray("strs", {"a", "b"});
  w.AddInt32Array("ints", {1, 2, 3});
  w.AddFloat32Array("floats", {1.5f});
  w.AddArray("bools", GgufType::kBool, {GgufValue::Bool(false)});
  w.AddArray("u64s", GgufType::kUint64, {GgufValue::Unsigned(GgufType::kUint64, ~0ULL)});
  w.AddArray("nested", GgufType::kArray,
             {GgufValue::Array(GgufType::kInt8, {GgufValue::Signed(GgufType::kInt8, 5)}),
              GgufValue::Array(GgufType::kString, {GgufValue::String("x")})});
  return w.ToBytes();
}

// One small tensor of every type restkv reads, data from a fixed pattern.
std::string EveryTensorType(uint64_t alignment) {
  GgufWriter w;
  w.SetAlignment(alignment);
  w.AddString("general.architecture", "llama");
  std::vector<float> x(512);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>(static_cast<int>(i * 37 % 29) - 14) / 7.0f;
  for (uint32_t id = 0; id < 64; ++id) {
    const restkv::kernels::GgmlTypeTraits* t = restkv::kernels::GetGgmlTypeTraits(id);
    if (t == nullptr || !t->supported) continue;
    const auto type = static_cast<GgmlType>(id);
    const int64_t cols = t->block_size == 1 ? 8 : t->block_size;
    std::string bytes;
    if (restkv::kernels::HasReferenceQuantizer(type)) {
      bytes = restkv::kernels::QuantizeMatrix(type, x.data(), 2, cols);
    } else {
      // No quantiser: a byte pattern (scales may decode to anything).
      bytes.resize(2 * restkv::kernels::RowBytes(type, cols));
      for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 13 % 251 % 60);
    }
    w.AddTensor(std::string(t->name) + ".weight", {cols, 2}, type, bytes);
  }
  return w.ToBytes();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::string v2 = AllValueTypes();
  v2[4] = 2;  // the version field: v2 and v3 share the layout
  const bool ok = Write(dir, "all_value_types.gguf", AllValueTypes()) &&
                  Write(dir, "v2.gguf", v2) &&
                  Write(dir, "every_tensor_type.gguf", EveryTensorType(32)) &&
                  Write(dir, "alignment_64.gguf", EveryTensorType(64)) &&
                  Write(dir, "header_only.gguf", GgufWriter().ToBytes());
  if (!ok) {
    std::fprintf(stderr, "cannot write seeds to %s\n", dir.c_str());
    return 1;
  }
  return 0;
}
