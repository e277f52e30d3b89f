#include "engine/tokenizer/tokenizer_gguf.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace restkv::engine {
namespace {

// Builds a GGUF v3 file with metadata only (no tensors), written out by hand
// so this test checks the key names and types against the real reader.
class MetadataWriter {
 public:
  void String(const std::string& key, const std::string& value) {
    Key(key, kString);
    Str(value);
  }
  void U32(const std::string& key, uint32_t value) {
    Key(key, kUint32);
    Pod(value);
  }
  void Bool(const std::string& key, bool value) {
    Key(key, kBool);
    Pod(static_cast<uint8_t>(value));
  }
  void Strings(const std::string& key, const std::vector<std::string>& values) {
    Key(key, kArray);
    Pod(kString);
    Pod(static_cast<uint64_t>(values.size()));
    for (const std::string& v : values) Str(v);
  }
  template <typename T>
  void Array(const std::string& key, uint32_t type, const std::vector<T>& values) {
    Key(key, kArray);
    Pod(type);
    Pod(static_cast<uint64_t>(values.size()));
    for (const T& v : values) Pod(v);
  }

  // Returns the bytes of the file.
  std::string Bytes() const {
    std::string file;
    file += "GGUF";
    AppendPod(&file, uint32_t{3});
    AppendPod(&file, uint64_t{0});  // tensors
    AppendPod(&file, count_);
    file += kvs_;
    while (file.size() % 32 != 0) file.push_back('\0');  // data section alignment
    return file;
  }

  static constexpr uint32_t kUint32 = 4, kInt32 = 5, kFloat32 = 6, kBool = 7, kString = 8,
                            kArray = 9;

 private:
  template <typename T>
  static void AppendPod(std::string* s, const T& v) {
    s->append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  template <typename T>
  void Pod(const T& v) {
    AppendPod(&kvs_, v);
  }
  void Str(const std::string& s) {
    Pod(static_cast<uint64_t>(s.size()));
    kvs_ += s;
  }
  void Key(const std::string& key, uint32_t type) {
    Str(key);
    Pod(type);
    ++count_;
  }

  std::string kvs_;
  uint64_t count_ = 0;
};

absl::StatusOr<TokenizerData> ReadBack(const MetadataWriter& w) {
  const std::string bytes = w.Bytes();
  auto file = GgufFile::FromBuffer(bytes, "test.gguf");
  if (!file.ok()) return file.status();
  return TokenizerDataFromGguf(**file);
}

TEST(TokenizerGgufTest, ReadsBpeMetadata) {
  MetadataWriter w;
  w.String("general.architecture", "llama");
  w.String("tokenizer.ggml.model", "gpt2");
  w.String("tokenizer.ggml.pre", "smollm");
  w.Strings("tokenizer.ggml.tokens",
            {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab"});
  w.Array<int32_t>("tokenizer.ggml.token_type", MetadataWriter::kInt32, {3, 3, 3, 1, 1, 1});
  w.Strings("tokenizer.ggml.merges", {"a b"});
  w.U32("tokenizer.ggml.bos_token_id", 1);
  w.U32("tokenizer.ggml.eos_token_id", 2);
  w.U32("tokenizer.ggml.unknown_token_id", 0);
  w.U32("tokenizer.ggml.padding_token_id", 99);  // out of range: ignored
  w.Bool("tokenizer.ggml.add_bos_token", false);
  w.String("tokenizer.chat_template", "{{ '<|im_start|>' }}");
  auto data = ReadBack(w);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->model, "gpt2");
  EXPECT_EQ(data->pre, "smollm");
  EXPECT_EQ(data->tokens.size(), 6u);
  EXPECT_EQ(data->token_types, (std::vector<int32_t>{3, 3, 3, 1, 1, 1}));
  EXPECT_EQ(data->merges, std::vector<std::string>{"a b"});
  EXPECT_EQ(data->bos_id, 1);
  EXPECT_EQ(data->eos_id, 2);
  EXPECT_EQ(data->unk_id, 0);
  EXPECT_EQ(data->pad_id, -1);
  EXPECT_FALSE(data->add_bos);
  EXPECT_FALSE(data->add_space_prefix);
  EXPECT_EQ(data->chat_template, "{{ '<|im_start|>' }}");
  auto tok = Tokenizer::Create(*std::move(data));
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->Encode("<|im_start|>ab", false, true), (std::vector<int32_t>{1, 5}));
}

TEST(TokenizerGgufTest, AppliesLlamaCppDefaultsForSpm) {
  MetadataWriter w;
  w.String("general.architecture", "llama");
  w.String("tokenizer.ggml.model", "llama");
  w.Strings("tokenizer.ggml.tokens",
            {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "hi", "\xE2\x96\x81hi"});
  w.Array<float>("tokenizer.ggml.scores", MetadataWriter::kFloat32, {0, 0, 0, -3, -2, -1});
  auto data = ReadBack(w);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->bos_id, 1);
  EXPECT_EQ(data->eos_id, 2);
  EXPECT_EQ(data->unk_id, 0);
  EXPECT_TRUE(data->add_bos);
  EXPECT_TRUE(data->add_space_prefix);
  EXPECT_FALSE(data->add_eos);
  EXPECT_EQ(data->scores, (std::vector<float>{0, 0, 0, -3, -2, -1}));
  auto tok = Tokenizer::Create(*std::move(data));
  ASSERT_TRUE(tok.ok()) << tok.status();
  // "▁hi": h+i merges first, then ▁+hi.
  EXPECT_EQ((*tok)->Encode("hi", true, false), (std::vector<int32_t>{1, 5}));
}

TEST(TokenizerGgufTest, MissingKeysAreErrors) {
  MetadataWriter no_model;
  no_model.String("general.architecture", "llama");
  no_model.Strings("tokenizer.ggml.tokens", {"a"});
  EXPECT_EQ(ReadBack(no_model).status().code(), absl::StatusCode::kInvalidArgument);

  MetadataWriter no_merges;
  no_merges.String("general.architecture", "llama");
  no_merges.String("tokenizer.ggml.model", "gpt2");
  no_merges.Strings("tokenizer.ggml.tokens", {"a"});
  const auto status = ReadBack(no_merges).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("merges"), std::string::npos);
}

}  // namespace
}  // namespace restkv::engine
