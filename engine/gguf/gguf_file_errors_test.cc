// Malformed GGUF files: each must give an error that names the file, the
// byte offset and the field, never a crash.
#include <cstring>
#include <string>
#include <vector>

#include "engine/gguf/gguf_file.h"
#include "engine/gguf/gguf_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace restkv::engine {
namespace {

using kernels::GgmlType;
using ::testing::AllOf;
using ::testing::HasSubstr;

// Little-endian byte builder for hand-made files.
class Bytes {
 public:
  template <typename T>
  Bytes& Put(T v) {
    s_.append(reinterpret_cast<const char*>(&v), sizeof(T));
    return *this;
  }
  Bytes& U32(uint32_t v) { return Put(v); }
  Bytes& U64(uint64_t v) { return Put(v); }
  Bytes& Str(const std::string& v) {
    U64(v.size());
    s_ += v;
    return *this;
  }
  // "GGUF", version, tensor and kv counts: 24 bytes.
  Bytes& Header(uint64_t num_tensors, uint64_t num_kvs, uint32_t version = 3) {
    return U32(0x46554747).U32(version).U64(num_tensors).U64(num_kvs);
  }
  // A tensor-info record.
  Bytes& Tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                uint64_t offset) {
    Str(name).U32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) U64(d);
    return U32(type).U64(offset);
  }
  // Zero padding up to a multiple of `alignment`, then `n` data bytes.
  Bytes& Data(size_t n, size_t alignment = 32) {
    s_.resize((s_.size() + alignment - 1) / alignment * alignment, '\0');
    s_.append(n, '\x11');
    return *this;
  }
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

absl::Status ParseStatus(const std::string& bytes) {
  // An exact-size heap copy, so a sanitizer build catches any over-read.
  std::vector<char> copy(bytes.begin(), bytes.end());
  return GgufFile::FromBuffer(std::string_view(copy.data(), copy.size()), "bad.gguf").status();
}

// A small valid file: metadata of several kinds and three tensors.
std::string SmallValidFile() {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddUint32("llama.block_count", 2);
  w.AddStringArray("tokenizer.ggml.tokens", {"a", "b", "c"});
  w.AddArray("nested", GgufType::kArray,
             {GgufValue::Array(GgufType::kInt8, {GgufValue::Signed(GgufType::kInt8, 1)})});
  w.AddTensor("a", {4}, GgmlType::kF32, std::string(16, '\1'));
  w.AddTensor("b", {32, 2}, GgmlType::kQ8_0, std::string(68, '\0'));
  w.AddTensor("c", {2}, GgmlType::kF16, std::string(4, '\2'));
  return w.ToBytes();
}

TEST(GgufFileErrors, SmallValidFileParses) { EXPECT_TRUE(ParseStatus(SmallValidFile()).ok()); }

TEST(GgufFileErrors, EveryTruncationIsDataLoss) {
  const std::string bytes = SmallValidFile();
  for (size_t len = 0; len < bytes.size(); ++len) {
    const absl::Status s = ParseStatus(bytes.substr(0, len));
    ASSERT_TRUE(absl::IsDataLoss(s)) << "prefix of " << len << " bytes: " << s;
    ASSERT_THAT(s.message(), AllOf(HasSubstr("bad.gguf: offset "), HasSubstr(": "))) << len;
  }
}

TEST(GgufFileErrors, Empty) {
  const absl::Status s = ParseStatus("");
  EXPECT_TRUE(absl::IsDataLoss(s));
  EXPECT_THAT(s.message(), HasSubstr("bad.gguf: offset 0: header magic"));
}

TEST(GgufFileErrors, BadMagic) {
  std::string bytes = SmallValidFile();
  bytes[0] = 'X';
  const absl::Status s = ParseStatus(bytes);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("offset 0: header magic: not a GGUF file"));
}

TEST(GgufFileErrors, UnsupportedVersions) {
  for (uint32_t version : {0u, 1u, 4u, 99u}) {
    const absl::Status s = ParseStatus(Bytes().Header(0, 0, version).str());
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << version;
    EXPECT_THAT(s.message(),
                HasSubstr("offset 4: header version: version " + std::to_string(version)));
  }
  EXPECT_THAT(ParseStatus(Bytes().Header(0, 0, 0x03000000).str()).message(),
              HasSubstr("big-endian"));
}

TEST(GgufFileErrors, AbsurdCounts) {
  absl::Status s = ParseStatus(Bytes().Header(1ULL << 40, 0).str());
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("offset 8: header tensor_count"));
  s = ParseStatus(Bytes().Header(0, ~0ULL).str());
  EXPECT_THAT(s.message(), HasSubstr("offset 16: header kv_count"));
  // Plausible counts with too few bytes behind them are truncation.
  EXPECT_TRUE(absl::IsDataLoss(ParseStatus(Bytes().Header(1000, 1000).str())));
}

TEST(GgufFileErrors, HugeStringLength) {
  const absl::Status s = ParseStatus(Bytes().Header(0, 1).U64(~0ULL).str());
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("offset 24: metadata[0] key: string length"));
  const absl::Status t = ParseStatus(Bytes().Header(0, 1).U64(1000).Str("k").str());
  EXPECT_TRUE(absl::IsDataLoss(t));
  EXPECT_THAT(t.message(), HasSubstr("runs past the end"));
  // A string value (not a key): the field is the key.
  const absl::Status u = ParseStatus(Bytes().Header(0, 1).Str("name").U32(8).U64(1ULL << 50).str());
  EXPECT_THAT(u.message(), HasSubstr("offset 40: metadata 'name'"));
}

TEST(GgufFileErrors, HugeArrayCount) {
  // key "k" (9 bytes from 24), type at 33, element type at 37, count at 41.
  const absl::Status s =
      ParseStatus(Bytes().Header(0, 1).Str("k").U32(9).U32(4).U64(1ULL << 62).str());
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("offset 41: metadata 'k': array count"));
  const absl::Status t =
      ParseStatus(Bytes().Header(0, 1).Str("k").U32(9).U32(4).U64(1000).U32(1).str());
  EXPECT_TRUE(absl::IsDataLoss(t));
  EXPECT_THAT(t.message(), HasSubstr("array of 1000 uint32 items cannot fit"));
}

TEST(GgufFileErrors, BadValueTypes) {
  absl::Status s = ParseStatus(Bytes().Header(0, 1).Str("k").U32(13).str());
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("offset 33: metadata 'k' type: unknown value type id 13"));
  s = ParseStatus(Bytes().Header(0, 1).Str("k").U32(9).U32(77).U64(0).str());
  EXPECT_THAT(s.message(), HasSubstr("offset 37: metadata 'k': unknown value type id 77"));
  s = ParseStatus(Bytes().Header(0, 1).Str("k").U32(7).Put<uint8_t>(2).str());
  EXPECT_THAT(s.message(), HasSubstr("bool byte is 2"));
}

TEST(GgufFileErrors, ArraysNestedTooDeep) {
  Bytes b;
  b.Header(0, 1).Str("k").U32(9);
  for (int i = 0; i < 20; ++i) b.U32(9).U64(1);
  b.U32(0).U64(0);
  EXPECT_THAT(ParseStatus(b.str()).message(), HasSubstr("nested more than"));
}

TEST(GgufFileErrors, DuplicateKey) {
  const absl::Status s =
      ParseStatus(Bytes().Header(0, 2).Str("k").U32(4).U32(1).Str("k").U32(4).U32(2).str());
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("offset 41: metadata 'k': duplicate key"));
}

TEST(GgufFileErrors, BadAlignment) {
  for (uint32_t a : {0u, 3u, 4u, 48u, 1u << 30}) {
    const absl::Status s =
        ParseStatus(Bytes().Header(0, 1).Str("general.alignment").U32(4).U32(a).str());
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << a;
    EXPECT_THAT(s.message(), HasSubstr("general.alignment")) << a;
  }
  // Of type string.
  EXPECT_FALSE(
      ParseStatus(Bytes().Header(0, 1).Str("general.alignment").U32(8).Str("x").str()).ok());
}

TEST(GgufFileErrors, BadTensorInfos) {
  struct Case {
    Bytes file;
    std::string message;
  };
  // Tensor infos start at offset 24 (no metadata); the name "t" takes 9 bytes.
  std::vector<Case> cases;
  cases.push_back(
      {Bytes().Header(1, 0).Tensor("t", {}, 0, 0), "offset 33: tensor 't' n_dims: 0 dims"});
  cases.push_back(
      {Bytes().Header(1, 0).Tensor("t", {1, 1, 1, 1, 1}, 0, 0), "tensor 't' n_dims: 5 dims"});
  cases.push_back({Bytes().Header(1, 0).Tensor("t", {4, 0}, 0, 0),
                   "offset 45: tensor 't' dims[1]: dimension 0"});
  cases.push_back(
      {Bytes().Header(1, 0).Tensor("t", {1ULL << 40, 1ULL << 40}, 0, 0), "tensor 't' dims[1]"});
  cases.push_back({Bytes().Header(1, 0).Tensor("t", {~0ULL}, 0, 0), "tensor 't' dims[0]"});
  cases.push_back({Bytes().Header(1, 0).Tensor("t", {32}, 99, 0),
                   "offset 45: tensor 't' type: ggml type id 99 (unknown)"});
  cases.push_back(
      {Bytes().Header(1, 0).Tensor("t", {256}, 15, 0), "ggml type id 15 (Q8_K) is not supported"});
  cases.push_back({Bytes().Header(1, 0).Tensor("t", {48}, 2, 0),
                   "row length 48 is not a multiple of the Q4_0 block size 32"});
  cases.push_back({Bytes().Header(1, 0).Tensor("t", {4}, 0, 16),
                   "offset 49: tensor 't' offset: data offset 16"});
  cases.push_back({Bytes().Header(2, 0).Tensor("t", {4}, 0, 0).Tensor("t", {4}, 0, 32),
                   "offset 57: tensor 't': duplicate"});
  for (const Case& c : cases) {
    const absl::Status s = ParseStatus(c.file.str());
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_THAT(s.message(), HasSubstr(c.message));
  }
}

TEST(GgufFileErrors, TensorDataOutOfBoundsOrOverlapping) {
  // 4 floats (16 bytes) at offset 0, but only 8 data bytes.
  absl::Status s = ParseStatus(Bytes().Header(1, 0).Tensor("t", {4}, 0, 0).Data(8).str());
  EXPECT_TRUE(absl::IsDataLoss(s));
  EXPECT_THAT(s.message(),
              HasSubstr("offset 64: tensor 't' data: 16 bytes at data offset 0 run past the end"));
  // Offset far past the end.
  s = ParseStatus(Bytes().Header(1, 0).Tensor("t", {4}, 0, 1ULL << 60).Data(16).str());
  EXPECT_TRUE(absl::IsDataLoss(s));
  // Overflowing offset + size.
  s = ParseStatus(Bytes().Header(1, 0).Tensor("t", {4}, 0, ~0ULL - 31).Data(16).str());
  EXPECT_TRUE(absl::IsDataLoss(s));
  // Two 64-byte tensors, the second starting inside the first.
  s = ParseStatus(
      Bytes().Header(2, 0).Tensor("a", {16}, 0, 0).Tensor("b", {16}, 0, 32).Data(128).str());
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("tensor 'b' data: overlaps tensor 'a'"));
  // Listed in reverse order, still caught.
  s = ParseStatus(
      Bytes().Header(2, 0).Tensor("b", {16}, 0, 32).Tensor("a", {16}, 0, 0).Data(128).str());
  EXPECT_THAT(s.message(), HasSubstr("overlaps"));
  // Back to back is fine.
  EXPECT_TRUE(
      ParseStatus(
          Bytes().Header(2, 0).Tensor("a", {8}, 0, 0).Tensor("b", {8}, 0, 32).Data(64).str())
          .ok());
}

TEST(GgufFileErrors, GettersReportTypeMismatches) {
  GgufWriter w;
  w.AddString("s", "x");
  w.AddUint64("big", ~0ULL);
  w.AddArray("big_array", GgufType::kUint64, {GgufValue::Unsigned(GgufType::kUint64, ~0ULL)});
  w.AddInt32("i", 7);
  w.AddFloat32("f", 1.5f);
  w.AddBool("b", true);
  w.AddStringArray("sa", {"x"});
  const std::string bytes = w.ToBytes();
  auto f = GgufFile::FromBuffer(bytes, "g.gguf");
  ASSERT_TRUE(f.ok());
  const GgufFile& g = **f;
  absl::Status s = g.GetInt("s").status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("g.gguf: metadata 's' is string, expected an integer"));
  EXPECT_THAT(g.GetString("i").status().message(), HasSubstr("'i' is int32, expected string"));
  EXPECT_THAT(g.GetInt("f").status().message(), HasSubstr("is float32"));
  EXPECT_THAT(g.GetIntArray("sa").status().message(),
              HasSubstr("is array of string, expected array of integers"));
  EXPECT_THAT(g.GetStringArray("s").status().message(), HasSubstr("expected array of string"));
  EXPECT_FALSE(g.GetFloatArray("sa").ok());
  EXPECT_FALSE(g.GetBool("i").ok());
  EXPECT_FALSE(g.GetFloat("b").ok());
  EXPECT_THAT(g.GetInt("big").status().message(), HasSubstr("does not fit in int64"));
  EXPECT_THAT(g.GetIntArray("big_array").status().message(), HasSubstr("item 0"));
  EXPECT_EQ(*g.GetFloat("i"), 7.0);  // integers are numbers
  EXPECT_EQ(*g.GetFloat("big"), 18446744073709551615.0);
  EXPECT_TRUE(absl::IsNotFound(g.GetString("absent").status()));
  EXPECT_THAT(g.GetInt("absent").status().message(), HasSubstr("'absent' is missing"));
  EXPECT_TRUE(absl::IsNotFound(g.GetFloatArray("absent").status()));
  // The ...Or variants: default when absent, error when mistyped.
  EXPECT_EQ(*g.GetIntOr("absent", 3), 3);
  EXPECT_EQ(*g.GetIntOr("i", 3), 7);
  EXPECT_EQ(*g.GetFloatOr("absent", 2.5), 2.5);
  EXPECT_EQ(*g.GetBoolOr("absent", true), true);
  EXPECT_EQ(*g.GetStringOr("absent", "d"), "d");
  EXPECT_EQ(*g.GetStringOr("s", "d"), "x");
  EXPECT_TRUE(absl::IsInvalidArgument(g.GetIntOr("s", 3).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(g.GetBoolOr("s", true).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(g.GetStringOr("i", "d").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(g.GetFloatOr("s", 1.0).status()));
}

}  // namespace
}  // namespace restkv::engine
