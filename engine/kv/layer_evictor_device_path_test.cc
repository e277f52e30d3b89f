// The evictor's device path (Backend::host_addressable() false: pages moved
// only through CopyToHost / CopyFromHost, as on CUDA) gives exactly the same
// kept tokens, compacted pages and logits as its host path. The device is
// simulated by a CPU backend that refuses to be addressed from the host, so
// the path runs (and fails if wrong) on every machine.
#include <cstring>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "engine/kv/kv_layer_hook.h"
#include "engine/kv/block_pool.h"
#include "engine/model/llama_model.h"
#include "engine/model/model.h"
#include "engine/kv/sequence_kv.h"
#include "engine/model/synthetic_model.h"
#include "gtest/gtest.h"
#include "kernels/cpu/testing/forwarding_backend.h"

namespace restkv::engine {
namespace {

// A CPU backend that claims its memory is not host-addressable, and counts
// the copies that cross to the host.
class DeviceLikeBackend final : public kernels::ForwardingBackend {
 public:
  explicit DeviceLikeBackend(int threads) : ForwardingBackend(threads) {}
  std::string_view name() const override { return "device-like"; }
  bool host_addressable() const override { return false; }
  void CopyToHost(const float* src, float* dst, size_t n) override {
    ++copies_;
    cpu_.CopyToHost(src, dst, n);
  }
  void CopyFromHost(const float* src, float* dst, size_t n) override {
    ++copies_;
    cpu_.CopyFromHost(src, dst, n);
  }
  int64_t copies() const { return copies_; }

 private:
  int64_t copies_ = 0;
};

class EvictorDevicePathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticModelSpec spec;
    spec.num_layers = 3;
    spec.num_heads = 4;
    spec.num_kv_heads = 2;
    spec.weight_type = kernels::GgmlType::kQ8_0;
    spec.context_length = 2048;
    path_ = (std::filesystem::temp_directory_path() /
             ("restkv_evictor_device_test_" + std::to_string(::getpid()) + ".gguf")).string();
    std::ofstream(path_, std::ios::binary) << BuildSyntheticGguf(spec);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  struct Result {
    std::vector<float> logits;
    std::vector<int32_t> cached_len;
    std::vector<std::vector<float>> layer_kv;  // each layer's first cached_len slots, page images
  };

  Result Run(kernels::Backend& backend, const char* policy_name) {
    auto model = Model::Load(path_, backend);
    EXPECT_TRUE(model.ok()) << model.status();
    const ModelConfig& c = (*model)->config();
    const int32_t bs = 16;
    auto pool = BlockPool::Create(backend, {c.num_kv_heads, c.head_dim, bs}, 256);
    EXPECT_TRUE(pool.ok());
    KvPolicyConfig policy;
    policy.kind = *ParseKvPolicy(policy_name);
    policy.budget = 64;
    std::vector<int32_t> prompt(300);
    for (int i = 0; i < 300; ++i) prompt[i] = (i * 29 + 7) % 256;
    SequenceKv kv(**pool, c.num_layers);
    EvictionReport report;
    SequenceInput in{prompt, 0, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
    LayerEvictor evictor((*model)->config(), (*model)->weights(), (*model)->backend());
    KvLayerHook hook(kv, policy, evictor, &report);
    in.hook = &hook;
    Result r;
    const absl::Status st = (*model)->forward().Forward({&in, 1}, &r.logits);
    EXPECT_TRUE(st.ok()) << st;
    const int64_t page_floats = 2LL * c.num_kv_heads * bs * c.head_dim;
    for (int32_t l = 0; l < c.num_layers; ++l) {
      r.cached_len.push_back(kv.cached_len()[l]);
      std::vector<float> images;
      for (int32_t p = 0; p * bs < kv.cached_len()[l]; ++p) {
        std::vector<float> page(page_floats);
        backend.CopyToHost(kv.page_ptrs()[l][p], page.data(), page.size());
        // Only the filled rows count: the device path zero-fills the rest.
        const int32_t rows = std::min(bs, kv.cached_len()[l] - p * bs);
        for (int64_t half = 0; half < 2; ++half) {
          for (int32_t h = 0; h < c.num_kv_heads; ++h) {
            const float* src = page.data() + half * page_floats / 2 + int64_t{h} * bs * c.head_dim;
            images.insert(images.end(), src, src + int64_t{rows} * c.head_dim);
          }
        }
      }
      r.layer_kv.push_back(std::move(images));
    }
    return r;
  }

  std::string path_;
};

TEST_F(EvictorDevicePathTest, SameKeptTokensPagesAndLogitsAsHostPath) {
  for (const char* name : {"restkv", "snapkv", "h2o", "streamingllm"}) {
    SCOPED_TRACE(name);
    kernels::cpu::CpuBackend host(2);
    DeviceLikeBackend device(2);
    const Result a = Run(host, name);
    const Result b = Run(device, name);
    EXPECT_GT(device.copies(), 0);
    EXPECT_EQ(a.cached_len, b.cached_len);
    for (int32_t len : b.cached_len) EXPECT_LT(len, 300) << "the policy evicted nothing";
    EXPECT_EQ(a.layer_kv, b.layer_kv);
    EXPECT_EQ(a.logits, b.logits);
  }
}

}  // namespace
}  // namespace restkv::engine
