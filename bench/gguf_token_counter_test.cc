#include "bench/gguf_token_counter.h"

#include <cstdlib>
#include <filesystem>

#include "bench/prompt_builder.h"
#include "gtest/gtest.h"

namespace restkv::bench {
namespace {

std::string DefaultModel() {
  const char* root = std::getenv("RESTKV_SOURCE_DIR");
  return std::string(root != nullptr ? root : RESTKV_SOURCE_DIR) +
         "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

TEST(LoadGgufTokenizer, MissingFileIsNamed) {
  auto t = LoadGgufTokenizer("/nonexistent/model.gguf");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("/nonexistent/model.gguf"), std::string::npos) << t.status();
}

TEST(LoadGgufTokenizer, PromptsOfExactLengthsWithTheDefaultModel) {
  const std::string path = DefaultModel();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path << " (scripts/fetch-model)";
  auto tok = LoadGgufTokenizer(path);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->context_length, 8192);  // SmolLM2's llama.context_length
  EXPECT_EQ(*tok->count(" the"), 1);
  EXPECT_EQ(*tok->count("Hello, world"), 3);  // "Hello" "," " world"
  auto builder = PromptBuilder::FromTokenizer(tok->count, 7);
  ASSERT_TRUE(builder.ok()) << builder.status();
  for (int32_t n : {1, 37, 512, 700}) {
    const std::string prompt = builder->Build(n, {3, 4}, 0);
    EXPECT_EQ(*tok->count(prompt), n) << n;
  }
}

}  // namespace
}  // namespace restkv::bench
