// LayerEvictor with a backend that has eviction kernels (the CUDA backend's
// DeviceLayerEviction, run on the host emulation over host memory) against
// the same evictor on the CPU backend (the reference path), through a whole
// prefill of a synthetic model: the same kept tokens per layer and KV head,
// the same compacted pages and logits, and no copy to or from the host
// touches a KV page during the prefill.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/kv/block_pool.h"
#include "engine/kv/kv_layer_hook.h"
#include "engine/kv/sequence_kv.h"
#include "engine/model/llama_model.h"
#include "engine/model/model.h"
#include "engine/testing/synthetic_model_file.h"
#include "gtest/gtest.h"
#include "kernels/cpu/testing/forwarding_backend.h"
#include "kernels/cuda/device_layer_eviction.h"
#include "kernels/cuda/emulation/host_memory_ops.h"

namespace restkv::engine {
namespace {

// The CPU backend with the eviction kernels, its memory declared
// non-host-addressable; every copy's host-side range is recorded.
class KernelEvictionBackend final : public kernels::ForwardingBackend {
 public:
  KernelEvictionBackend() : ForwardingBackend(2), eviction_(memory_, nullptr) {}
  std::string_view name() const override { return "emulated-eviction"; }
  bool host_addressable() const override { return false; }
  kernels::LayerEvictionOps* layer_eviction() override { return &eviction_; }
  void CopyToHost(const float* src, float* dst, size_t n) override {
    copies_.push_back({src, n});
    cpu_.CopyToHost(src, dst, n);
  }
  void CopyFromHost(const float* src, float* dst, size_t n) override {
    copies_.push_back({dst, n});
    cpu_.CopyFromHost(src, dst, n);
  }

  struct Copy {
    const float* device;
    size_t n;
  };
  std::vector<Copy> copies_;

 private:
  kernels::cuda::emulation::HostMemoryOps memory_;
  kernels::cuda::DeviceLayerEviction eviction_;
};

class LayerEvictorDeviceKernelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticModelSpec spec;
    spec.num_layers = 2;
    spec.weight_type = kernels::GgmlType::kQ8_0;
    path_ = WriteSyntheticModel(spec, "evictor_kernels_test");
  }
  void TearDown() override { std::filesystem::remove(path_); }

  struct Result {
    std::vector<float> logits;
    std::vector<int32_t> cached_len;
    std::vector<std::vector<int32_t>> head_len;
    std::vector<std::vector<std::vector<int32_t>>> kept;
    std::vector<std::vector<float>> layer_kv;
    bool copied_a_page = false;
  };

  Result Run(kernels::Backend& backend, const char* policy_name,
             std::vector<KernelEvictionBackend::Copy>* copies) {
    const int32_t bs = 8;
    ModelOptions options;
    options.block_size = bs;
    auto model = Model::Load(path_, backend, options);
    EXPECT_TRUE(model.ok()) << model.status();
    const ModelConfig& c = (*model)->config();
    auto pool = BlockPool::Create(backend, {c.num_kv_heads, c.head_dim, bs}, 128);
    EXPECT_TRUE(pool.ok());
    KvPolicyConfig policy;
    EXPECT_TRUE(ApplyKvPolicySpec(policy_name, &policy).ok()) << policy_name;
    policy.budget = 40;
    policy.window = 8;
    std::vector<int32_t> prompt(101);
    for (int i = 0; i < 101; ++i) prompt[i] = (i * 29 + 7) % 256;
    SequenceKv kv(**pool, c.num_layers);
    EvictionReport report;
    report.record_kept = true;
    SequenceInput in{prompt, 0, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
    LayerEvictor evictor((*model)->config(), (*model)->weights(), (*model)->backend());
    KvLayerHook hook(kv, policy, evictor, &report);
    in.hook = &hook;
    if (copies != nullptr) copies->clear();
    Result r;
    const absl::Status st = (*model)->forward().Forward({&in, 1}, &r.logits);
    EXPECT_TRUE(st.ok()) << st;
    const int64_t page_floats = 2LL * c.num_kv_heads * bs * c.head_dim;
    if (copies != nullptr) {
      const float* lo = (*pool)->PageData(0);
      const float* hi = (*pool)->PageData((*pool)->num_pages() - 1) + page_floats;
      for (const auto& copy : *copies) {
        r.copied_a_page |= copy.device < hi && copy.device + copy.n > lo;
      }
    }
    r.kept = report.kept;
    r.head_len.assign(kv.head_len().begin(), kv.head_len().end());
    for (int32_t l = 0; l < c.num_layers; ++l) {
      r.cached_len.push_back(kv.cached_len()[l]);
      const std::vector<int32_t>& lens = kv.head_len()[l];
      std::vector<float> images;
      for (int32_t p = 0; p * bs < kv.cached_len()[l]; ++p) {
        std::vector<float> page(page_floats);
        backend.CopyToHost(kv.page_ptrs()[l][p], page.data(), page.size());
        for (int64_t half = 0; half < 2; ++half) {
          for (int32_t h = 0; h < c.num_kv_heads; ++h) {
            // A head's padding (AdaKV) holds unspecified values: left out.
            const int32_t len = lens.empty() ? kv.cached_len()[l] : lens[h];
            const int32_t rows = std::clamp(len - p * bs, 0, bs);
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

TEST_F(LayerEvictorDeviceKernelsTest, SameKeptTokensPagesAndLogitsAsTheCpuPath) {
  for (const char* name : {"restkv", "snapkv", "pyramidkv", "h2o", "tova", "streamingllm",
                           "restkv+adakv", "snapkv+adakv", "h2o+adakv"}) {
    SCOPED_TRACE(name);
    kernels::cpu::CpuBackend host(2);
    KernelEvictionBackend device;
    const Result a = Run(host, name, nullptr);
    const Result b = Run(device, name, &device.copies_);
    EXPECT_FALSE(b.copied_a_page) << "a KV page crossed to or from the host";
    EXPECT_EQ(a.cached_len, b.cached_len);
    EXPECT_EQ(a.head_len, b.head_len);
    if (std::string_view(name).ends_with("+adakv")) {
      bool padded = false;
      for (const std::vector<int32_t>& lens : b.head_len) padded |= !lens.empty();
      EXPECT_TRUE(padded) << "no layer's heads kept different counts";
    }
    for (int32_t len : b.cached_len) EXPECT_LT(len, 101) << "the policy evicted nothing";
    EXPECT_EQ(a.kept, b.kept);
    EXPECT_EQ(a.layer_kv, b.layer_kv);
    EXPECT_EQ(a.logits, b.logits);
  }
}

}  // namespace
}  // namespace restkv::engine
