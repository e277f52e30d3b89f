#include "engine/backend_parity.h"

#include <filesystem>

#include "engine/testing/synthetic_model_file.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::engine {
namespace {

class BackendParityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticModelSpec spec;
    spec.num_layers = 3;
    spec.hidden_size = 128;
    spec.ffn_size = 256;
    path_ = WriteSyntheticModel(spec, "backend_parity");
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::unique_ptr<Model> Load(kernels::Backend& backend, kernels::KvDtype dtype) {
    ModelOptions options;
    options.kv_dtype = dtype;
    auto m = Model::Load(path_, backend, options);
    EXPECT_TRUE(m.ok()) << m.status();
    return std::move(*m);
  }

  ParityOptions Small() const {
    ParityOptions o;
    o.prompt_tokens = 40;
    o.decode_steps = 12;
    o.evict_prompt_tokens = 300;
    o.kv_budget = 64;
    return o;
  }

  std::string path_;
  kernels::cpu::CpuBackend one_thread_{1}, two_threads_{2};
};

// Two CPU backends (1 and 2 threads) compute bit-identical results: every
// figure is at its ideal.
TEST_F(BackendParityTest, IdenticalBackendsAgreeEverywhere) {
  auto a = Load(one_thread_, kernels::KvDtype::kF32);
  auto b = Load(two_threads_, kernels::KvDtype::kF32);
  const auto r = CompareBackends(*a, *b, Small());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->steps, 12);
  EXPECT_EQ(r->top1_agree, 12);
  EXPECT_EQ(r->clear_mismatches, 0);
  EXPECT_EQ(r->max_abs_logit_error, 0.0);
  EXPECT_GT(r->max_abs_logit, 0.0);
  EXPECT_EQ(r->greedy_identical, 12);
  ASSERT_EQ(r->kept.size(), 2u);
  for (const KeptParity& k : r->kept) EXPECT_EQ(k.mean_jaccard, 1.0) << k.policy;
}

// A different KV precision is a different computation: the logits move (by
// a bounded amount, never to a clear mismatch) and the kept sets mostly
// agree (snapkv's are identical on this model, restkv's are not).
TEST_F(BackendParityTest, ADifferentKvPrecisionShowsUpInTheFigures) {
  auto a = Load(one_thread_, kernels::KvDtype::kF32);
  auto b = Load(two_threads_, kernels::KvDtype::kQ8_0);
  const auto r = CompareBackends(*a, *b, Small());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->max_abs_logit_error, 0.0);
  EXPECT_LT(r->max_abs_logit_error, 0.1 * r->max_abs_logit);
  EXPECT_EQ(r->clear_mismatches, 0);
  ASSERT_EQ(r->kept.size(), 2u);
  EXPECT_LT(r->kept[0].mean_jaccard, 1.0) << r->kept[0].policy;
  for (const KeptParity& k : r->kept) EXPECT_GT(k.mean_jaccard, 0.7) << k.policy;
}

TEST_F(BackendParityTest, RejectsModelsOfDifferentShapes) {
  auto a = Load(one_thread_, kernels::KvDtype::kF32);
  SyntheticModelSpec other;
  other.num_layers = 2;
  const std::string path = WriteSyntheticModel(other, "backend_parity_other");
  auto b = *Model::Load(path, two_threads_);
  std::filesystem::remove(path);
  EXPECT_EQ(CompareBackends(*a, *b, Small()).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace restkv::engine
