// Sparse prefill through LlamaModel: a prompt longer than one row chunk,
// with a pattern that keeps every block, gives exactly the logits of dense
// prefill; a real pattern changes them (it did skip something) but not the
// decode path, which stays dense.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/gguf/gguf_file.h"
#include "engine/kv/block_pool.h"
#include "engine/kv/sequence_kv.h"
#include "engine/model/llama_model.h"
#include "engine/model/synthetic_model.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::engine {
namespace {

class SparsePrefillModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticModelSpec spec;
    spec.hidden_size = 256;  // head_dim 64: the vectorised attention path
    spec.num_heads = 4;
    spec.num_kv_heads = 2;
    bytes_ = BuildSyntheticGguf(spec);
    file_ = std::move(*GgufFile::FromBuffer(bytes_, "synthetic"));
    config_ = *ModelConfig::FromGguf(*file_);
    weights_ = std::move(*ModelWeights::Load(*file_, config_, backend_));
    pool_ = std::move(*BlockPool::Create(backend_, {config_.num_kv_heads, config_.head_dim, 16},
                                         4 * (kPrompt / 16 + 2)));
    for (int32_t i = 0; i < kPrompt; ++i) prompt_.push_back((i * 37 + 11) % 250);
  }

  // All-position logits of the prompt, then the logits of one decode token.
  std::pair<std::vector<float>, std::vector<float>> Run(
      const std::optional<kernels::SparsePrefill>& sparse) {
    LlamaModel model(config_, weights_, backend_, 16);
    if (sparse.has_value()) model.set_sparse_prefill(*sparse);
    SequenceKv kv(*pool_, config_.num_layers);
    EXPECT_TRUE(kv.Reserve(kPrompt));
    SequenceInput in{prompt_, 0, kv.cached_len(), kv.page_ptrs(), LogitsMode::kAll};
    std::vector<float> prefill, decode;
    EXPECT_TRUE(model.Forward({&in, 1}, &prefill).ok());
    kv.Commit(kPrompt);
    const std::vector<int32_t> next = {5};
    EXPECT_TRUE(kv.Reserve(1));
    SequenceInput d{next, kPrompt, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
    EXPECT_TRUE(model.Forward({&d, 1}, &decode).ok());
    return {prefill, decode};
  }

  static constexpr int32_t kPrompt = 1300;  // three row chunks of 512
  kernels::cpu::CpuBackend backend_{2};
  std::string bytes_;
  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<BlockPool> pool_;
  std::vector<int32_t> prompt_;
};

TEST_F(SparsePrefillModelTest, DensePatternEqualsDensePrefillExactly) {
  kernels::SparsePrefill all;
  all.top_blocks = 1000;
  const auto dense = Run(std::nullopt);
  const auto sparse = Run(all);
  EXPECT_EQ(sparse.first, dense.first);
  EXPECT_EQ(sparse.second, dense.second);
}

TEST_F(SparsePrefillModelTest, ARealPatternSkipsKeys) {
  kernels::SparsePrefill few;
  few.top_blocks = 1;
  few.local_blocks = 1;
  const auto dense = Run(std::nullopt);
  const auto sparse = Run(few);
  ASSERT_EQ(sparse.first.size(), dense.first.size());
  const int64_t V = config_.vocab_size;
  // Row 100 (the first chunk, within its own block and the sink): the same
  // keys either way at layer 0; row 1000 misses most of its keys.
  double diff_late = 0;
  for (int64_t i = 0; i < V; ++i) {
    diff_late += std::fabs(sparse.first[1000 * V + i] - dense.first[1000 * V + i]);
    ASSERT_TRUE(std::isfinite(sparse.first[1000 * V + i]));
  }
  EXPECT_GT(diff_late, 1e-3);
  for (int64_t i = 0; i < V; ++i) {
    EXPECT_NEAR(sparse.first[40 * V + i], dense.first[40 * V + i], 1e-4) << "row 40 sees block 0";
  }
}

}  // namespace
}  // namespace restkv::engine
