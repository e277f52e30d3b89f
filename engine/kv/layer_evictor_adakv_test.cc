// Head-wise eviction (adaptive=adakv) through LayerEvictor on a synthetic
// model: every KV head keeps its own count, the layer keeps the longest
// head's slots (padding the others), the kept rows are the stored rows of the
// kept tokens, and decode attention ignores whatever the padding holds.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/kv/block_pool.h"
#include "engine/kv/kv_layer_hook.h"
#include "engine/kv/layer_evictor.h"
#include "engine/kv/sequence_kv.h"
#include "engine/model/llama_model.h"
#include "engine/model/model.h"
#include "engine/model/synthetic_model.h"
#include "engine/testing/synthetic_model_file.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/testing/forwarding_backend.h"

namespace restkv::engine {
namespace {

constexpr int32_t kPrompt = 300, kBlock = 16;

class AdaKvEvictorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticModelSpec spec;
    spec.num_layers = 3;
    spec.context_length = 2048;
    path_ = WriteSyntheticModel(spec, "adakv_test");
    auto model = Model::Load(path_, backend_, ModelOptions{});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    const ModelConfig& c = model_->config();
    auto pool = BlockPool::Create(
        backend_, {c.num_kv_heads, c.head_dim, kBlock, kernels::KvDtype::kF32}, 256);
    ASSERT_TRUE(pool.ok());
    pool_ = std::move(*pool);
    for (int i = 0; i < kPrompt; ++i) prompt_.push_back((i * 29 + 7) % 256);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  static KvPolicyConfig Policy(const char* name, bool adakv) {
    KvPolicyConfig p;
    p.kind = *ParseKvPolicy(name);
    p.budget = 64;
    if (adakv) p.adaptive = AdaptiveBudget::kAdaKv;
    return p;
  }

  absl::Status Prefill(const KvPolicyConfig& policy, SequenceKv& kv, EvictionReport* report) {
    SequenceInput in{prompt_, 0, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
    LayerEvictor evictor(model_->config(), model_->weights(), model_->backend());
    KvLayerHook hook(kv, policy, evictor, report);
    in.hook = &hook;
    std::vector<float> logits;
    return model_->forward().Forward({&in, 1}, &logits);
  }

  // One decode token after the prompt; with_lengths = false drops the
  // per-head lengths (attention then reads the padding too).
  std::vector<float> Decode(SequenceKv& kv, bool with_lengths) {
    const std::vector<int32_t> token = {42};
    EXPECT_TRUE(kv.Reserve(1));
    SequenceInput in{token, kPrompt, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
    if (with_lengths) {
      in.head_len = kv.head_len();
      in.padding_end = kv.padding_end();
    }
    std::vector<float> logits;
    EXPECT_TRUE(model_->forward().Forward({&in, 1}, &logits).ok());
    return logits;  // not committed: the next Decode rewrites the same slot
  }

  float* KRow(SequenceKv& kv, int32_t layer, int32_t head, int32_t slot) {
    const kernels::KvPageLayout layout = kv.layout();
    auto* base = reinterpret_cast<uint8_t*>(kv.page_ptrs()[layer][slot / kBlock]);
    return reinterpret_cast<float*>(base +
                                    layout.RowIndex(head, slot % kBlock) * layout.row_bytes());
  }

  kernels::cpu::CpuBackend backend_{2};
  std::string path_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<BlockPool> pool_;
  std::vector<int32_t> prompt_;
};

TEST_F(AdaKvEvictorTest, PerHeadLengthsPaddingAndPages) {
  for (const char* name : {"snapkv", "restkv"}) {
    SCOPED_TRACE(name);
    const KvPolicyConfig policy = Policy(name, true);
    const ModelConfig& c = model_->config();
    SequenceKv full(*pool_, c.num_layers), kv(*pool_, c.num_layers);
    EvictionReport none, report;
    report.record_kept = true;
    ASSERT_TRUE(Prefill(Policy("full", false), full, &none).ok());
    ASSERT_TRUE(Prefill(policy, kv, &report).ok());
    ASSERT_EQ(report.kept.size(), static_cast<size_t>(c.num_layers));
    int32_t padded_layers = 0;
    int64_t total = 0;
    for (int32_t l = 0; l < c.num_layers; ++l) {
      const auto& keep = report.kept[l];
      ASSERT_EQ(keep.size(), 2u);
      const int32_t longest = static_cast<int32_t>(std::max(keep[0].size(), keep[1].size()));
      total += static_cast<int64_t>(keep[0].size() + keep[1].size());
      EXPECT_EQ(kv.cached_len()[l], longest);
      EXPECT_LE(longest, KeptTokensForLayer(policy, l, c.num_layers, kPrompt));
      EXPECT_EQ(static_cast<int32_t>(kv.page_ids(l).size()), (longest + kBlock - 1) / kBlock);
      if (keep[0].size() != keep[1].size()) {
        ++padded_layers;
        ASSERT_EQ(kv.head_len()[l].size(), 2u);
        EXPECT_EQ(kv.head_len()[l][0], static_cast<int32_t>(keep[0].size()));
        EXPECT_EQ(kv.head_len()[l][1], static_cast<int32_t>(keep[1].size()));
        EXPECT_EQ(kv.padding_end()[l], longest);
      } else {
        EXPECT_TRUE(kv.head_len()[l].empty());
      }
      // Slot i of head h holds the K the full run stored for keep[h][i]
      // (layer outputs during prefill do not depend on eviction).
      for (int32_t h = 0; h < 2; ++h) {
        for (size_t i = 0; i < keep[h].size(); ++i) {
          ASSERT_TRUE(std::equal(KRow(kv, l, h, static_cast<int32_t>(i)),
                                 KRow(kv, l, h, static_cast<int32_t>(i)) + c.head_dim,
                                 KRow(full, l, h, keep[h][i])))
              << "layer " << l << " head " << h << " slot " << i;
        }
      }
    }
    EXPECT_GT(padded_layers, 0) << "every head kept the same count: the padding is untested";
    // The heads share the layer's budget: about Hkv * (B - w) candidates.
    EXPECT_NEAR(static_cast<double>(total), c.num_layers * 2.0 * 64, c.num_layers * 2.0 * 2);

    // Decode ignores the padding: overwriting it changes nothing, while
    // attending to it (no per-head lengths) changes the logits.
    const std::vector<float> before = Decode(kv, true);
    for (int32_t l = 0; l < c.num_layers; ++l) {
      if (kv.head_len()[l].empty()) continue;
      for (int32_t h = 0; h < 2; ++h) {
        for (int32_t s = kv.head_len()[l][h]; s < kv.padding_end()[l]; ++s) {
          std::fill_n(KRow(kv, l, h, s), c.head_dim, 50.0f);
        }
      }
    }
    const std::vector<float> after = Decode(kv, true);
    EXPECT_EQ(before, after);
    const std::vector<float> unmasked = Decode(kv, false);
    EXPECT_NE(before, unmasked);
    for (float x : before) ASSERT_TRUE(std::isfinite(x));
  }
}

// A backend whose pages the host cannot address and that has no eviction
// kernels: the evictor scores images of the pages copied to the host and
// copies the compacted pages back. The same kept sets, head lengths and
// logits as on the CPU backend. (The CUDA backend's own kernels are checked
// in kernels/cuda/emulation/layer_evictor_device_test.cc.)
TEST_F(AdaKvEvictorTest, PageCopyPathEqualsTheCpuPath) {
  class NotHostAddressable final : public kernels::ForwardingBackend {
   public:
    NotHostAddressable() : ForwardingBackend(2) {}
    std::string_view name() const override { return "not-host-addressable"; }
    bool host_addressable() const override { return false; }
  };
  NotHostAddressable device;
  auto model = Model::Load(path_, device, ModelOptions{});
  ASSERT_TRUE(model.ok());
  const ModelConfig& c = (*model)->config();
  auto pool =
      BlockPool::Create(device, {c.num_kv_heads, c.head_dim, kBlock, kernels::KvDtype::kF32}, 256);
  ASSERT_TRUE(pool.ok());
  for (const char* name : {"snapkv", "restkv"}) {
    SCOPED_TRACE(name);
    const KvPolicyConfig policy = Policy(name, true);  // the hooks keep a pointer
    SequenceKv ref_kv(*pool_, c.num_layers);
    EvictionReport ref;
    ref.record_kept = true;
    ASSERT_TRUE(Prefill(policy, ref_kv, &ref).ok());

    SequenceKv kv(**pool, c.num_layers);
    SequenceInput in{prompt_, 0, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
    LayerEvictor evictor(c, (*model)->weights(), (*model)->backend());
    EvictionReport report;
    report.record_kept = true;
    KvLayerHook hook(kv, policy, evictor, &report);
    in.hook = &hook;
    std::vector<float> logits;
    ASSERT_TRUE((*model)->forward().Forward({&in, 1}, &logits).ok());
    EXPECT_EQ(report.kept, ref.kept);
    bool padded = false;
    for (int32_t l = 0; l < c.num_layers; ++l) {
      EXPECT_EQ(kv.head_len()[l], ref_kv.head_len()[l]) << "layer " << l;
      padded |= !kv.head_len()[l].empty();
    }
    EXPECT_TRUE(padded) << "no layer's heads kept different counts";
    // Decode over the padded pages on both.
    const std::vector<int32_t> token = {42};
    ASSERT_TRUE(kv.Reserve(1));
    SequenceInput d{token, kPrompt, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
    d.head_len = kv.head_len();
    d.padding_end = kv.padding_end();
    std::vector<float> decoded;
    ASSERT_TRUE((*model)->forward().Forward({&d, 1}, &decoded).ok());
    EXPECT_EQ(decoded, Decode(ref_kv, true));
  }
}

}  // namespace
}  // namespace restkv::engine
