// Structured outputs through the whole engine on a synthetic model (byte
// tokens plus a few merges): outputs match the constraint as std::regex
// (an independent implementation) sees it, sampling at temperature 1 with
// many seeds; the same constrained request gives the same tokens alone and
// batched; a max_tokens cut is kLength; EOS comes only where the grammar may
// end (the request stops itself there).
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>

#include "engine/engine.h"
#include "engine/model/synthetic_model.h"
#include "engine/testing/synthetic_model_file.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::engine {
namespace {

class Sink final : public RequestSink {
 public:
  void OnTokens(const TokenDelta& d) override {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.insert(tokens_.end(), d.token_ids.begin(), d.token_ids.end());
    text_ += d.text;
  }
  void OnFinish(const RequestSummary& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    summary_ = s;
    done_ = true;
    cv_.notify_all();
  }
  RequestSummary Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    return summary_;
  }
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }
  std::vector<int32_t> tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::vector<int32_t> tokens_;
  std::string text_;
  RequestSummary summary_;
};

class StructuredEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticModelSpec spec;
    spec.num_layers = 2;
    spec.weight_type = kernels::GgmlType::kQ8_0;
    spec.context_length = 512;
    path_ = WriteSyntheticModel(spec, "structured_engine_test");
    backend_ = std::make_unique<kernels::cpu::CpuBackend>(2);
    model_ = *Model::Load(path_, *backend_);
    EngineOptions opt;
    opt.kv_cache_bytes = 64LL << 20;
    engine_ = *Engine::Create(*model_, opt);
  }
  void TearDown() override {
    engine_.reset();
    std::filesystem::remove(path_);
  }

  std::shared_ptr<const structured::CompiledGrammar> Compile(structured::GrammarKind kind,
                                                             const std::string& text) {
    auto g = engine_->grammar_compiler().Compile({kind, text, {}});
    EXPECT_TRUE(g.ok()) << g.status();
    return *g;
  }
  std::shared_ptr<Sink> Submit(std::shared_ptr<const structured::CompiledGrammar> g,
                               float temperature, uint64_t seed, int max_tokens, int salt = 0) {
    EngineRequest r;
    for (int i = 0; i < 12; ++i) r.prompt_tokens.push_back((i * 37 + salt * 11 + 5) % 256);
    r.params.temperature = temperature;
    r.params.seed = seed;
    r.params.max_tokens = max_tokens;
    r.grammar = std::move(g);
    auto sink = std::make_shared<Sink>();
    r.sink = sink;
    EXPECT_TRUE(engine_->Submit(std::move(r)).ok());
    return sink;
  }

  std::string path_;
  std::unique_ptr<kernels::cpu::CpuBackend> backend_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(StructuredEngineTest, SampledOutputsMatchTheRegex) {
  const std::string rx = "(he|ll)[a-f]{2,5}(x|yz)?-[0-9]{1,3}";
  auto g = Compile(structured::GrammarKind::kRegex, rx);
  std::vector<std::shared_ptr<Sink>> sinks;
  for (uint64_t seed = 0; seed < 24; ++seed) sinks.push_back(Submit(g, 1.0f, seed, 64));
  for (auto& s : sinks) {
    const RequestSummary sum = s->Wait();
    EXPECT_EQ(sum.reason, FinishReason::kStop) << s->text();
    EXPECT_TRUE(std::regex_match(s->text(), std::regex(rx))) << s->text();
  }
}

TEST_F(StructuredEngineTest, JsonSchemaOutputsHaveTheShape) {
  auto g = Compile(structured::GrammarKind::kJsonSchema,
                   R"({"type": "object", "properties": {"a": {"type": "integer", "minimum": 0,
                       "maximum": 99}, "b": {"enum": ["x", "y"]}}, "required": ["a", "b"]})");
  // A regex that accepts exactly the sentences of this schema's grammar.
  const std::regex shape(
      R"re(\{( |\n[ \t]{0,16})?"a"( |\n[ \t]{0,16})?:( |\n[ \t]{0,16})?([0-9]|[1-9][0-9])( |\n[ \t]{0,16})?,( |\n[ \t]{0,16})?"b"( |\n[ \t]{0,16})?:( |\n[ \t]{0,16})?"[xy]"( |\n[ \t]{0,16})?\})re");
  std::vector<std::shared_ptr<Sink>> sinks;
  for (uint64_t seed = 0; seed < 16; ++seed) sinks.push_back(Submit(g, 1.0f, seed, 200));
  for (auto& s : sinks) {
    const RequestSummary sum = s->Wait();
    if (sum.reason == FinishReason::kLength) continue;  // whitespace can run long at T=1
    EXPECT_EQ(sum.reason, FinishReason::kStop);
    EXPECT_TRUE(std::regex_match(s->text(), shape)) << s->text();
  }
}

TEST_F(StructuredEngineTest, BatchedEqualsAlone) {
  auto g = Compile(structured::GrammarKind::kRegex, "[a-z]{4,12}[.!]");
  auto alone = Submit(g, 0.0f, 1, 32, 3);
  alone->Wait();
  std::vector<std::shared_ptr<Sink>> sinks;
  for (int salt = 0; salt < 8; ++salt)
    sinks.push_back(Submit(g, salt == 3 ? 0.0f : 1.0f, salt, 32, salt));
  for (auto& s : sinks) s->Wait();
  EXPECT_EQ(sinks[3]->tokens(), alone->tokens());
  EXPECT_FALSE(alone->tokens().empty());
}

TEST_F(StructuredEngineTest, MaxTokensCutIsLength) {
  auto g = Compile(structured::GrammarKind::kRegex, "[a-z]{50}");
  auto s = Submit(g, 1.0f, 2, 5);
  const RequestSummary sum = s->Wait();
  EXPECT_EQ(sum.reason, FinishReason::kLength);
  EXPECT_EQ(s->tokens().size(), 5u);
}

TEST_F(StructuredEngineTest, CompletingOnTheLastAllowedTokenIsStop) {
  auto g = Compile(structured::GrammarKind::kRegex, "[a-f]{5}");
  auto s = Submit(g, 1.0f, 4, 5);
  EXPECT_EQ(s->Wait().reason, FinishReason::kStop);
  EXPECT_EQ(s->text().size(), 5u);
}

TEST_F(StructuredEngineTest, SubmitRefusesAGrammarOfAnotherVocabulary) {
  std::vector<std::string> pieces{"a", ""};
  auto vocab = std::make_shared<const structured::TokenVocabulary>(pieces, std::vector<int32_t>{1});
  structured::GrammarCompiler other(vocab);
  auto g = other.Compile({structured::GrammarKind::kRegex, "a", {}});
  ASSERT_TRUE(g.ok());
  EngineRequest r;
  r.prompt_tokens = {1, 2, 3};
  r.grammar = *g;
  r.sink = std::make_shared<Sink>();
  EXPECT_EQ(engine_->Submit(std::move(r)).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace restkv::engine
