// restkv against llama.cpp on the default model (fixtures from
// scripts/gen-golden): tokenisation, logits at the last prompt position, and
// the greedy continuation step by step.
//
// The model path comes from $RESTKV_MODEL or models/; without it the tests
// skip, unless $RESTKV_REQUIRE_MODEL is set (CI), where they fail.
#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/generator.h"
#include "engine/kv/block_pool.h"
#include "engine/kv/sequence_kv.h"
#include "engine/model/model.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "nlohmann/json.hpp"

namespace restkv {
namespace {

using nlohmann::json;

// Tolerances, from measuring llama.cpp against itself (tests/golden/README.md).
// llama.cpp and restkv run the same quantised weights with the same Q8_1
// activation rounding, but sum in different orders and use different exp()
// implementations. An activation sitting on an int8 rounding boundary then
// moves a whole step, and that propagates through 30 layers: llama.cpp's own
// logits move by up to 0.57 (top-20, last prompt position) and 1.1 (top-5,
// any step) when its input embeddings change by one ulp, and its own argmax
// flips wherever the top-1/top-2 gap is below ~0.45.
constexpr float kLastPositionTol = 0.75f;  // top-20 logits at the last prompt position
constexpr float kLastPositionMeanTol = 0.4f;
constexpr float kStepTol = 1.25f;     // llama.cpp's top-5 logits at every greedy step
constexpr float kDecisiveGap = 0.5f;  // argmax must agree where llama.cpp's gap exceeds this
constexpr float kDecisiveTop5Margin =
    1.0f;  // top-5 sets must agree where the 5th/6th margin exceeds this

std::string ModelPath() {
  if (const char* env = std::getenv("RESTKV_MODEL"); env && *env) return env;
  return std::string(RESTKV_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

json ReadFixture(const std::string& name) {
  std::ifstream in(std::string(RESTKV_SOURCE_DIR) + "/tests/golden/fixtures/" + name);
  EXPECT_TRUE(in.good()) << "missing fixture " << name;
  return json::parse(in);
}

class GoldenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = ModelPath();
    if (!std::filesystem::exists(path)) return;
    backend_ = new kernels::cpu::CpuBackend(2);
    auto m = engine::Model::Load(path, *backend_);
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = m->release();
    const auto& c = model_->config();
    pool_ = engine::BlockPool::Create(*backend_, {c.num_kv_heads, c.head_dim, 16}, 4096)->release();
  }
  static void TearDownTestSuite() {
    delete pool_;
    delete model_;
    delete backend_;
  }
  void SetUp() override {
    if (model_ == nullptr) {
      if (std::getenv("RESTKV_REQUIRE_MODEL") != nullptr) {
        FAIL() << "model not found at " << ModelPath() << " (run scripts/fetch-model)";
      }
      GTEST_SKIP() << "model not found at " << ModelPath();
    }
  }

  static kernels::cpu::CpuBackend* backend_;
  static engine::Model* model_;
  static engine::BlockPool* pool_;
};
kernels::cpu::CpuBackend* GoldenTest::backend_ = nullptr;
engine::Model* GoldenTest::model_ = nullptr;
engine::BlockPool* GoldenTest::pool_ = nullptr;

std::vector<int32_t> TopK(const float* logits, int32_t vocab, int k) {
  std::vector<int32_t> ids(vocab);
  for (int32_t i = 0; i < vocab; ++i) ids[i] = i;
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  ids.resize(k);
  return ids;
}

TEST_F(GoldenTest, TokenIdsMatchLlamaCpp) {
  const json fx = ReadFixture("tokenizer.json");
  int checked = 0;
  for (const json& c : fx["cases"]) {
    const std::string text = c["text"];
    const std::vector<int32_t> want = c["ids"];
    const std::vector<int32_t> got =
        model_->tokenizer().Encode(text, c["add_special"], c["parse_special"]);
    EXPECT_EQ(got, want) << "text: " << json(text).dump() << " add_special " << c["add_special"]
                         << " parse_special " << c["parse_special"];
    ++checked;
  }
  EXPECT_GE(checked, 40);
}

// For each prompt: prefill llama.cpp's tokens and compare the last
// position's top-20 logits; then teacher-force llama.cpp's greedy
// continuation and, at every step, compare our logits for its top-5 tokens,
// our argmax with its token where the choice is decisive, and our top-5 set
// with its set where that set is decisive. Near-ties are counted and printed.
TEST_F(GoldenTest, LogitsAndGreedyContinuationMatchLlamaCpp) {
  const json fx = ReadFixture("logits.json");
  const auto& c = model_->config();
  int prompts = 0, steps = 0, argmax_same = 0, near_tie_flips = 0, identical_continuations = 0;
  float worst_last = 0, worst_step = 0;
  for (const json& p : fx["prompts"]) {
    SCOPED_TRACE("prompt: " + p["prompt"].get<std::string>().substr(0, 60));
    const std::vector<int32_t> tokens = p["tokens"];
    const std::vector<int32_t> greedy = p["greedy"];
    const std::vector<float> gaps = p["gaps"];
    const std::vector<float> margins = p["top5_margins"];
    engine::SequenceKv kv(*pool_, c.num_layers);
    std::vector<float> logits;
    std::vector<int32_t> step = tokens;
    int32_t pos = 0;
    bool all_same = true;
    for (size_t i = 0; i <= greedy.size(); ++i) {
      ASSERT_TRUE(kv.Reserve(step.size()));
      engine::SequenceInput in{step, pos, kv.cached_len(), kv.page_ptrs(),
                               engine::LogitsMode::kLast};
      ASSERT_TRUE(model_->forward().Forward({&in, 1}, &logits).ok());
      kv.Commit(step.size());
      pos += step.size();
      if (i == 0) {
        float sum = 0;
        for (const json& e : p["top"]) {
          const float diff = std::fabs(logits[e[0].get<int32_t>()] - e[1].get<float>());
          worst_last = std::max(worst_last, diff);
          sum += diff;
          EXPECT_LE(diff, kLastPositionTol) << "token " << e[0];
        }
        EXPECT_LE(sum / p["top"].size(), kLastPositionMeanTol);
      }
      if (i == greedy.size()) break;
      ++steps;
      for (const json& e : p["top_per_step"][i]) {
        const float diff = std::fabs(logits[e[0].get<int32_t>()] - e[1].get<float>());
        worst_step = std::max(worst_step, diff);
        EXPECT_LE(diff, kStepTol) << "step " << i << " token " << e[0];
      }
      const std::vector<int32_t> top5 = TopK(logits.data(), c.vocab_size, 5);
      if (top5[0] == greedy[i]) {
        ++argmax_same;
      } else {
        all_same = false;
        if (gaps[i] > kDecisiveGap) {
          ADD_FAILURE() << "greedy step " << i << ": restkv picks " << top5[0] << ", llama.cpp "
                        << greedy[i] << " with a decisive gap of " << gaps[i];
        } else {
          ++near_tie_flips;
        }
      }
      if (margins[i] > kDecisiveTop5Margin) {
        std::set<int32_t> want5;
        for (const json& e : p["top_per_step"][i]) want5.insert(e[0].get<int32_t>());
        EXPECT_EQ(std::set<int32_t>(top5.begin(), top5.end()), want5) << "top-5 at step " << i;
      }
      step.assign(1, greedy[i]);
    }
    identical_continuations += all_same;
    ++prompts;
  }
  EXPECT_GE(prompts, 8);
  std::printf(
      "golden: %d prompts; top-20 at the last prompt position within %.3f; llama.cpp's top-5 at "
      "%d greedy steps within %.3f; same argmax at %d of %d steps (%d near-tie flips, gap <= "
      "%.2f); "
      "%d of %d continuations identical for all 32 tokens\n",
      prompts, worst_last, steps, worst_step, argmax_same, steps, near_tie_flips, kDecisiveGap,
      identical_continuations, prompts);
}

// Batch invariance on the real model: 16 prompts of different lengths give
// exactly the same greedy tokens alone (Generator) and all at once through
// the continuous-batching engine (prefill slicing forced by a small budget).
TEST_F(GoldenTest, SixteenPromptsBatchedEqualAlone) {
  const json fx = ReadFixture("logits.json");
  std::vector<std::vector<int32_t>> prompts;
  for (const json& p : fx["prompts"]) prompts.push_back(p["tokens"]);
  for (int i = 0; prompts.size() < 16; ++i) {  // shorter variants of the same prompts
    std::vector<int32_t> t = prompts[i];
    t.resize(std::max<size_t>(1, t.size() / 2));
    prompts.push_back(t);
  }
  engine::SamplingParams greedy;
  greedy.temperature = 0;
  greedy.max_tokens = 16;
  greedy.ignore_eos = true;
  std::vector<std::vector<int32_t>> alone;
  engine::Generator generator(*model_, *pool_);
  for (const auto& p : prompts) {
    auto r = generator.Generate({p, greedy}, nullptr);
    ASSERT_TRUE(r.ok()) << r.status();
    alone.push_back(r->tokens);
  }
  struct Sink : engine::RequestSink {
    std::vector<int32_t> tokens;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    void OnTokens(const engine::TokenDelta& d) override {
      tokens.insert(tokens.end(), d.token_ids.begin(), d.token_ids.end());
    }
    void OnFinish(const engine::RequestSummary&) override {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
      cv.notify_all();
    }
  };
  engine::EngineOptions opt;
  opt.kv_cache_bytes = 256 << 20;
  opt.max_num_batched_tokens = 128;
  auto eng = engine::Engine::Create(*model_, opt);
  ASSERT_TRUE(eng.ok()) << eng.status();
  std::vector<std::shared_ptr<Sink>> sinks;
  for (const auto& p : prompts) {
    sinks.push_back(std::make_shared<Sink>());
    ASSERT_TRUE((*eng)->Submit({p, greedy, 0, sinks.back()}).ok());
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::unique_lock<std::mutex> lock(sinks[i]->mu);
    sinks[i]->cv.wait(lock, [&] { return sinks[i]->done; });
    EXPECT_EQ(sinks[i]->tokens, alone[i])
        << "prompt " << i << " (" << prompts[i].size() << " tokens)";
  }
  (*eng)->Shutdown(1000);
  EXPECT_EQ((*eng)->GetStats().kv_pages_used, 0);
}

// The end-to-end promise of the README, through the tokenizer and sampler.
TEST_F(GoldenTest, CapitalOfFranceIsParis) {
  std::vector<int32_t> tokens = model_->tokenizer().Encode("The capital of France is", true, false);
  const auto& c = model_->config();
  engine::SequenceKv kv(*pool_, c.num_layers);
  std::string text;
  int32_t pos = 0;
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(kv.Reserve(tokens.size()));
    engine::SequenceInput in{tokens, pos, kv.cached_len(), kv.page_ptrs(),
                             engine::LogitsMode::kLast};
    std::vector<float> logits;
    ASSERT_TRUE(model_->forward().Forward({&in, 1}, &logits).ok());
    kv.Commit(tokens.size());
    pos += tokens.size();
    const int32_t next = TopK(logits.data(), c.vocab_size, 1)[0];
    text += model_->tokenizer().TokenToPiece(next);
    tokens.assign(1, next);
  }
  EXPECT_NE(text.find("Paris"), std::string::npos) << text;
}

}  // namespace
}  // namespace restkv
