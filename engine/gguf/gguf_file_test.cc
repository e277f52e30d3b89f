#include "engine/gguf/gguf_file.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "engine/gguf/gguf_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/quantize_ref.h"
#include "kernels/fp16.h"

namespace restkv::engine {
namespace {

using kernels::GgmlType;
using ::testing::HasSubstr;

std::string SourceDir() {
  const char* env = std::getenv("RESTKV_SOURCE_DIR");
#ifdef RESTKV_SOURCE_DIR
  return env != nullptr ? env : RESTKV_SOURCE_DIR;
#else
  return env != nullptr ? env : ".";
#endif
}

std::string Floats(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

std::unique_ptr<GgufFile> Parse(const std::string& bytes) {
  auto f = GgufFile::FromBuffer(bytes, "test.gguf");
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? std::move(*f) : nullptr;
}

TEST(GgufFileParse, EveryScalarType) {
  GgufWriter w;
  w.AddUint8("u8", 255);
  w.AddInt8("i8", -128);
  w.AddUint16("u16", 65535);
  w.AddInt16("i16", -32768);
  w.AddUint32("u32", 4294967295u);
  w.AddInt32("i32", std::numeric_limits<int32_t>::min());
  w.AddUint64("u64", std::numeric_limits<uint64_t>::max());
  w.AddInt64("i64", std::numeric_limits<int64_t>::min());
  w.AddFloat32("f32", 0.1f);
  w.AddFloat64("f64", -1e300);
  w.AddBool("yes", true);
  w.AddBool("no", false);
  w.AddString("utf8", "héllo ✓ 日本 🙂");
  w.AddString("empty", "");
  const std::string bytes = w.ToBytes();
  auto f = Parse(bytes);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  ASSERT_EQ(f->metadata().size(), 14u);
  // File order and exact types are kept.
  const char* keys[] = {"u8",  "i8",  "u16", "i16", "u32", "i32",  "u64",
                        "i64", "f32", "f64", "yes", "no",  "utf8", "empty"};
  const GgufType types[] = {GgufType::kUint8,   GgufType::kInt8,   GgufType::kUint16,
                            GgufType::kInt16,   GgufType::kUint32, GgufType::kInt32,
                            GgufType::kUint64,  GgufType::kInt64,  GgufType::kFloat32,
                            GgufType::kFloat64, GgufType::kBool,   GgufType::kBool,
                            GgufType::kString,  GgufType::kString};
  for (size_t i = 0; i < 14; ++i) {
    EXPECT_EQ(f->metadata()[i].key, keys[i]);
    EXPECT_EQ(f->metadata()[i].value.type(), types[i]) << keys[i];
  }
  EXPECT_EQ(*f->GetInt("u8"), 255);
  EXPECT_EQ(*f->GetInt("i8"), -128);
  EXPECT_EQ(*f->GetInt("u16"), 65535);
  EXPECT_EQ(*f->GetInt("i16"), -32768);
  EXPECT_EQ(*f->GetInt("u32"), 4294967295);
  EXPECT_EQ(*f->GetInt("i32"), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(f->Find("u64")->as_unsigned(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(*f->GetInt("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(*f->GetFloat("f32"), static_cast<double>(0.1f));
  EXPECT_EQ(*f->GetFloat("f64"), -1e300);
  EXPECT_TRUE(*f->GetBool("yes"));
  EXPECT_FALSE(*f->GetBool("no"));
  EXPECT_EQ(*f->GetString("utf8"), "héllo ✓ 日本 🙂");
  EXPECT_EQ(*f->GetString("empty"), "");
  EXPECT_EQ(f->Find("absent"), nullptr);
}

TEST(GgufFileParse, ArraysOfEveryElementTypeAndNested) {
  GgufWriter w;
  w.AddArray("a.u8", GgufType::kUint8,
             {GgufValue::Unsigned(GgufType::kUint8, 1), GgufValue::Unsigned(GgufType::kUint8, 2)});
  w.AddArray("a.i8", GgufType::kInt8, {GgufValue::Signed(GgufType::kInt8, -1)});
  w.AddArray("a.u16", GgufType::kUint16, {GgufValue::Unsigned(GgufType::kUint16, 7)});
  w.AddArray("a.i16", GgufType::kInt16, {GgufValue::Signed(GgufType::kInt16, -7)});
  w.AddArray("a.u32", GgufType::kUint32, {GgufValue::Unsigned(GgufType::kUint32, 9)});
  w.AddInt32Array("a.i32", {1, -2, 3});
  w.AddArray("a.u64", GgufType::kUint64, {GgufValue::Unsigned(GgufType::kUint64, 1ULL << 40)});
  w.AddArray("a.i64", GgufType::kInt64, {GgufValue::Signed(GgufType::kInt64, -(1LL << 40))});
  w.AddFloat32Array("a.f32", {0.5f, -1.5f});
  w.AddArray("a.f64", GgufType::kFloat64, {GgufValue::Float(GgufType::kFloat64, 2.25)});
  w.AddArray("a.bool", GgufType::kBool, {GgufValue::Bool(true), GgufValue::Bool(false)});
  w.AddStringArray("a.str", {"a", "", "ß✓"});
  w.AddArray("a.empty", GgufType::kInt32, {});
  w.AddArray(
      "a.nested", GgufType::kArray,
      {GgufValue::Array(GgufType::kInt32, {GgufValue::Signed(GgufType::kInt32, 1)}),
       GgufValue::Array(GgufType::kString, {GgufValue::String("x"), GgufValue::String("y")})});
  const std::string bytes = w.ToBytes();
  auto f = Parse(bytes);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(*f->GetIntArray("a.u8"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(*f->GetIntArray("a.i8"), (std::vector<int64_t>{-1}));
  EXPECT_EQ(*f->GetIntArray("a.u16"), (std::vector<int64_t>{7}));
  EXPECT_EQ(*f->GetIntArray("a.i16"), (std::vector<int64_t>{-7}));
  EXPECT_EQ(*f->GetIntArray("a.u32"), (std::vector<int64_t>{9}));
  EXPECT_EQ(*f->GetIntArray("a.i32"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(*f->GetIntArray("a.u64"), (std::vector<int64_t>{1LL << 40}));
  EXPECT_EQ(*f->GetIntArray("a.i64"), (std::vector<int64_t>{-(1LL << 40)}));
  EXPECT_EQ(*f->GetFloatArray("a.f32"), (std::vector<float>{0.5f, -1.5f}));
  EXPECT_EQ(*f->GetFloatArray("a.f64"), (std::vector<float>{2.25f}));
  EXPECT_EQ(*f->GetFloatArray("a.i32"), (std::vector<float>{1, -2, 3}));  // integers convert
  EXPECT_EQ(*f->GetStringArray("a.str"), (std::vector<std::string>{"a", "", "ß✓"}));
  EXPECT_TRUE(f->GetIntArray("a.empty")->empty());
  const GgufValue* b = f->Find("a.bool");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->element_type(), GgufType::kBool);
  EXPECT_EQ(b->size(), 2u);
  EXPECT_TRUE(b->items()[0].as_bool());
  const GgufValue* nested = f->Find("a.nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->element_type(), GgufType::kArray);
  ASSERT_EQ(nested->size(), 2u);
  EXPECT_EQ(nested->items()[1].element_type(), GgufType::kString);
  EXPECT_EQ(nested->items()[1].items()[1].as_string(), "y");
  // The writer reproduces the bytes it read.
  GgufWriter again;
  for (const GgufKv& kv : f->metadata()) again.Add(kv.key, kv.value);
  EXPECT_EQ(again.ToBytes(), bytes);
}

TEST(GgufFileParse, TensorsOfSeveralTypesWithCustomAlignment) {
  std::vector<float> v(2 * 256);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.1f * static_cast<float>(i));
  GgufWriter w;
  w.SetAlignment(64);
  w.AddString("general.name", "tiny");
  w.AddTensor("f32", {3}, GgmlType::kF32, Floats({1, 2, 3}));
  w.AddTensor("q4_0", {64, 2}, GgmlType::kQ4_0,
              kernels::QuantizeMatrix(GgmlType::kQ4_0, v.data(), 2, 64));
  w.AddTensor("q8_0.3d", {32, 2, 3}, GgmlType::kQ8_0,
              kernels::QuantizeMatrix(GgmlType::kQ8_0, v.data(), 6, 32));
  w.AddTensor("q4_k", {256, 2}, GgmlType::kQ4_K,
              kernels::QuantizeMatrix(GgmlType::kQ4_K, v.data(), 2, 256));
  w.AddTensor("f16", {32}, GgmlType::kF16,
              kernels::QuantizeMatrix(GgmlType::kF16, v.data(), 1, 32));
  const std::string bytes = w.ToBytes();
  auto f = Parse(bytes);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->Find("general.alignment")->type(), GgufType::kUint32);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  ASSERT_EQ(f->tensors().size(), 5u);
  const auto* base = reinterpret_cast<const uint8_t*>(bytes.data());
  for (const GgufTensorInfo& t : f->tensors()) {
    EXPECT_EQ(t.offset % 64, 0u) << t.name;
    EXPECT_EQ(t.data, base + f->data_offset() + t.offset) << t.name;
    EXPECT_EQ(f->FindTensor(t.name), &t);
  }
  const GgufTensorInfo* q8 = f->FindTensor("q8_0.3d");
  ASSERT_NE(q8, nullptr);
  EXPECT_EQ(q8->dims, (std::vector<int64_t>{32, 2, 3}));
  EXPECT_EQ(q8->type, GgmlType::kQ8_0);
  EXPECT_EQ(q8->num_elements, 192);
  EXPECT_EQ(q8->size_bytes, 6 * 34);
  EXPECT_EQ(f->FindTensor("q4_k")->size_bytes, 2 * 144);
  // Data is the bytes that were added, in place.
  const GgufTensorInfo* f32 = f->FindTensor("f32");
  float got[3];
  std::memcpy(got, f32->data, sizeof(got));
  EXPECT_EQ(got[2], 3.0f);
  std::vector<float> row(256);
  kernels::DequantizeRow(GgmlType::kQ4_K, f->FindTensor("q4_k")->data + 144, row.data(), 256);
  EXPECT_NEAR(row[7], v[256 + 7], 0.1);
  EXPECT_EQ(f->FindTensor("absent"), nullptr);
}

TEST(GgufFileParse, AcceptsVersion2) {
  GgufWriter w;
  w.AddUint32("k", 1);
  std::string bytes = w.ToBytes();
  bytes[4] = 2;
  auto f = Parse(bytes);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->version(), 2u);
}

TEST(GgufFileParse, ValueToString) {
  EXPECT_EQ(GgufValue::Signed(GgufType::kInt32, -5).ToString(), "-5");
  EXPECT_EQ(GgufValue::Unsigned(GgufType::kUint64, 18446744073709551615ULL).ToString(),
            "18446744073709551615");
  EXPECT_EQ(GgufValue::Float(GgufType::kFloat32, 0.5).ToString(), "0.5");
  EXPECT_EQ(GgufValue::Bool(true).ToString(), "true");
  EXPECT_EQ(GgufValue::String("a\"b\n\x01").ToString(), "\"a\\\"b\\n\\x01\"");
  // Cut at a character boundary: 79 ASCII bytes then a 3-byte character.
  const std::string s = std::string(79, 'x') + "✓✓";
  EXPECT_EQ(GgufValue::String(s).ToString(), "\"" + std::string(79, 'x') + "\"…(85 bytes)");
  std::vector<GgufValue> items;
  for (int i = 0; i < 10; ++i) items.push_back(GgufValue::Signed(GgufType::kInt32, i));
  EXPECT_EQ(GgufValue::Array(GgufType::kInt32, items).ToString(3), "array<int32>[10] [0, 1, 2, …]");
  EXPECT_EQ(GgufTypeName(GgufType::kFloat64), "float64");
  EXPECT_EQ(GgufTypeName(static_cast<GgufType>(99)), "unknown");
}

TEST(GgufFileOpen, MapsAFileWrittenByTheWriter) {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddTensor("t", {4}, GgmlType::kF32, Floats({1, 2, 3, 4}));
  const std::string path = ::testing::TempDir() + "/gguf_file_test_open.gguf";
  ASSERT_TRUE(w.WriteFile(path).ok());
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->name(), path);
  EXPECT_EQ(*(*f)->GetString("general.architecture"), "llama");
  float x[4];
  std::memcpy(x, (*f)->FindTensor("t")->data, sizeof(x));
  EXPECT_EQ(x[3], 4.0f);
  std::remove(path.c_str());
}

TEST(GgufFileOpen, Errors) {
  EXPECT_TRUE(absl::IsNotFound(GgufFile::Open("/nonexistent/dir/model.gguf").status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(GgufFile::Open(::testing::TempDir()).status()));  // a directory
  const std::string path = ::testing::TempDir() + "/gguf_file_test_empty.gguf";
  std::fclose(std::fopen(path.c_str(), "wb"));
  const absl::Status empty = GgufFile::Open(path).status();
  EXPECT_TRUE(absl::IsDataLoss(empty)) << empty;
  EXPECT_THAT(empty.message(), HasSubstr(path));
  std::remove(path.c_str());
  EXPECT_TRUE(absl::IsNotFound(GgufWriter().WriteFile("/nonexistent/dir/x.gguf")));
}

// A file written by gguf-py (scripts/gen-quant-fixture): an independent
// writer, with general.alignment 64.
TEST(GgufFileOpen, ReadsFileWrittenByGgufPy) {
  auto f = GgufFile::Open(SourceDir() + "/engine/gguf/testdata/gguf_py_small.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 64u);
  EXPECT_EQ(*g.GetString("general.architecture"), "llama");
  EXPECT_EQ(*g.GetInt("test.u8"), 200);
  EXPECT_EQ(*g.GetInt("test.i8"), -100);
  EXPECT_EQ(*g.GetInt("test.u16"), 60000);
  EXPECT_EQ(*g.GetInt("test.i16"), -30000);
  EXPECT_EQ(*g.GetInt("test.u32"), 4000000000);
  EXPECT_EQ(*g.GetInt("test.i32"), -2000000000);
  EXPECT_TRUE(absl::IsInvalidArgument(g.GetInt("test.u64").status()));  // 2^63
  EXPECT_EQ(g.Find("test.u64")->as_unsigned(), 1ULL << 63);
  EXPECT_EQ(*g.GetInt("test.i64"), -(1LL << 62));
  EXPECT_EQ(*g.GetFloat("test.f32"), 0.125);
  EXPECT_EQ(*g.GetFloat("test.f64"), -2.5e-300);
  EXPECT_TRUE(*g.GetBool("test.bool"));
  EXPECT_EQ(*g.GetString("test.str"), "héllo wörld ✓");
  EXPECT_EQ(*g.GetStringArray("test.strs"), (std::vector<std::string>{"a", "ß", "日本"}));
  EXPECT_EQ(*g.GetIntArray("test.ints"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(*g.GetFloatArray("test.floats"), (std::vector<float>{0.5f, -1.25f}));
  ASSERT_EQ(g.tensors().size(), 3u);
  const GgufTensorInfo* f32 = g.FindTensor("f32");
  ASSERT_NE(f32, nullptr);
  EXPECT_EQ(f32->dims, (std::vector<int64_t>{4, 2}));  // numpy shape (2, 4) reversed
  float x[8];
  std::memcpy(x, f32->data, sizeof(x));
  EXPECT_EQ(x[5], 5.0f);
  EXPECT_EQ(g.FindTensor("f16")->type, GgmlType::kF16);
  const GgufTensorInfo* q = g.FindTensor("q8_0");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, GgmlType::kQ8_0);
  EXPECT_EQ(q->dims, (std::vector<int64_t>{32, 2}));
  std::vector<float> y(64);
  kernels::DequantizeRow(q->type, q->data, y.data(), 64);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(y[i], -1.0 + 2.0 * i / 63, 0.005) << i;
}

}  // namespace
}  // namespace restkv::engine
