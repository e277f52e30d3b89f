#include "engine/gguf/gguf_writer.h"

#include <string>

#include "absl/strings/escaping.h"
#include "engine/gguf/gguf_file.h"
#include "gtest/gtest.h"

namespace restkv::engine {
namespace {

using kernels::GgmlType;

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

TEST(GgufWriter, ExactBytesOfATinyFile) {
  GgufWriter w;
  w.AddUint8("k", 7);
  w.AddTensor("t", {1}, GgmlType::kF32, std::string("\x00\x00\x80\x3f", 4));  // 1.0f
  const std::string expected =
      "47475546"
      "03000000"
      "0100000000000000"
      "0100000000000000"  // magic, v3, 1 tensor, 1 kv
      "0100000000000000"
      "6b"
      "00000000"
      "07"  // "k": uint8 7
      "0100000000000000"
      "74"
      "01000000"
      "0100000000000000"
      "00000000"                  // "t": 1 dim {1}, F32
      "0000000000000000"          // data offset 0
      + std::string(2 * 25, '0')  // pad 71 -> 96
      + "0000803f";
  EXPECT_EQ(Hex(w.ToBytes()), expected);
}

TEST(GgufWriter, AlignmentIsWrittenFirstAndPadsTensors) {
  GgufWriter w;
  w.SetAlignment(64);
  w.AddString("a", "b");
  w.AddTensor("x", {1}, GgmlType::kF32, std::string(4, '\0'));
  w.AddTensor("y", {1}, GgmlType::kF32, std::string(4, '\0'));
  const std::string bytes = w.ToBytes();
  auto f = GgufFile::FromBuffer(bytes, "w.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->metadata().size(), 2u);
  EXPECT_EQ((*f)->metadata()[0].key, "general.alignment");
  EXPECT_EQ((*f)->metadata()[0].value.type(), GgufType::kUint32);
  EXPECT_EQ((*f)->FindTensor("y")->offset, 64u);
  EXPECT_EQ(bytes.size(), (*f)->data_offset() + 64 + 4);
}

TEST(GgufWriter, DefaultAlignmentIsNotWritten) {
  GgufWriter w;
  w.SetAlignment(32);
  auto f = GgufFile::FromBuffer(w.ToBytes(), "w.gguf");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE((*f)->metadata().empty());
}

TEST(GgufWriterDeathTest, MisuseIsAProgrammerError) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(GgufWriter().AddTensor("t", {32}, GgmlType::kQ8_0, std::string(33, '\0')),
               "tensor t");
  EXPECT_DEATH(GgufWriter().AddTensor("t", {48}, GgmlType::kQ4_0, std::string(27, '\0')), "");
  EXPECT_DEATH(
      {
        GgufWriter w;
        w.AddBool("k", true);
        w.AddBool("k", false);
      },
      "duplicate key k");
  EXPECT_DEATH(GgufWriter().SetAlignment(12), "alignment 12");
  EXPECT_DEATH(GgufValue::Array(GgufType::kInt32, {GgufValue::Bool(true)}),
               "array of int32 holds a bool");
}

}  // namespace
}  // namespace restkv::engine
