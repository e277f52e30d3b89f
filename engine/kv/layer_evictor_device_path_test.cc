// The evictor's device path (Backend::host_addressable() false: pages moved
// only through CopyToHost / CopyFromHost, as on CUDA) gives exactly the same
// kept tokens, compacted pages and logits as its host path. The device is
// simulated by a CPU backend that refuses to be addressed from the host, so
// the path runs (and fails if wrong) on every machine.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "engine/kv/block_pool.h"
#include "engine/kv/kv_layer_hook.h"
#include "engine/kv/sequence_kv.h"
#include "engine/model/llama_model.h"
#include "engine/model/model.h"
#include "engine/testing/synthetic_model_file.h"
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
    spec.weight_type = kernels::GgmlType::kQ8_0;
    spec.context_length = 2048;
    path_ = WriteSyntheticModel(spec, "evictor_device_test");
  }
  void TearDown() override { std::filesystem::remove(path_); }

  struct Result {
    std::vector<float> logits;
    std::vector<int32_t> cached_len;
    std::vector<std::vector<float>> layer_kv;  // per layer [K|V][Hkv][cached_len][d], as stored
    std::vector<std::vector<std::vector<int32_t>>> kept;  // [layer][kv head] kept positions
  };

  Result Run(kernels::Backend& backend, const char* policy_name, kernels::KvDtype dtype) {
    ModelOptions options;
    options.kv_dtype = dtype;
    auto model = Model::Load(path_, backend, options);
    EXPECT_TRUE(model.ok()) << model.status();
    const ModelConfig& c = (*model)->config();
    const int32_t bs = 16;
    auto pool = BlockPool::Create(backend, {c.num_kv_heads, c.head_dim, bs, dtype}, 256);
    EXPECT_TRUE(pool.ok());
    KvPolicyConfig policy;
    policy.kind = *ParseKvPolicy(policy_name);
    policy.budget = 64;
    std::vector<int32_t> prompt(300);
    for (int i = 0; i < 300; ++i) prompt[i] = (i * 29 + 7) % 256;
    SequenceKv kv(**pool, c.num_layers);
    EvictionReport report;
    report.record_kept = true;
    SequenceInput in{prompt, 0, kv.cached_len(), kv.page_ptrs(), LogitsMode::kLast};
    LayerEvictor evictor((*model)->config(), (*model)->weights(), (*model)->backend());
    KvLayerHook hook(kv, policy, evictor, &report);
    in.hook = &hook;
    Result r;
    const absl::Status st = (*model)->forward().Forward({&in, 1}, &r.logits);
    EXPECT_TRUE(st.ok()) << st;
    r.kept = report.kept;
    const kernels::KvPageLayout layout = kv.layout();
    for (int32_t l = 0; l < c.num_layers; ++l) {
      r.cached_len.push_back(kv.cached_len()[l]);
      const int32_t n = kv.cached_len()[l];
      std::vector<std::vector<float>> pages;
      for (int32_t p = 0; p * bs < n; ++p) {
        pages.emplace_back(layout.page_bytes() / 4);
        backend.CopyToHost(kv.page_ptrs()[l][p], pages.back().data(), pages.back().size());
      }
      // Only the filled rows count, as stored values (decoded with their
      // q8_0 scales, which must have moved with them): [K|V][Hkv][n][d].
      std::vector<float> rows;
      for (int64_t half = 0; half < 2; ++half) {
        for (int32_t h = 0; h < c.num_kv_heads; ++h) {
          for (int32_t i = 0; i < n; ++i) {
            const auto* bytes = reinterpret_cast<const uint8_t*>(pages[i / bs].data());
            const auto* scales = reinterpret_cast<const float*>(bytes + layout.k_scale_offset());
            const int64_t row = layout.RowIndex(h, i % bs);
            std::vector<float> x(c.head_dim);
            kernels::DecodeKvRow(
                layout.dtype, bytes + half * layout.v_offset() + row * layout.row_bytes(),
                layout.has_scales() ? scales[half * layout.rows_per_page() + row] : 1.0f,
                c.head_dim, x.data());
            rows.insert(rows.end(), x.begin(), x.end());
          }
        }
      }
      r.layer_kv.push_back(std::move(rows));
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
    const Result a = Run(host, name, kernels::KvDtype::kF32);
    const Result b = Run(device, name, kernels::KvDtype::kF32);
    EXPECT_GT(device.copies(), 0);
    EXPECT_EQ(a.cached_len, b.cached_len);
    for (int32_t len : b.cached_len) EXPECT_LT(len, 300) << "the policy evicted nothing";
    EXPECT_EQ(a.layer_kv, b.layer_kv);
    EXPECT_EQ(a.logits, b.logits);
  }
}

// The same for pages of every other dtype: compaction moves stored rows
// and, for q8_0, their scales (a scale left behind would change the values).
TEST_F(EvictorDevicePathTest, SameResultsForEveryKvDtype) {
  for (kernels::KvDtype dtype :
       {kernels::KvDtype::kF16, kernels::KvDtype::kBf16, kernels::KvDtype::kQ8_0}) {
    SCOPED_TRACE(std::string(kernels::KvDtypeName(dtype)));
    kernels::cpu::CpuBackend host(2);
    DeviceLikeBackend device(2);
    const Result a = Run(host, "restkv", dtype);
    const Result b = Run(device, "restkv", dtype);
    const Result f32 = Run(host, "restkv", kernels::KvDtype::kF32);
    EXPECT_EQ(a.cached_len, b.cached_len);
    EXPECT_EQ(a.layer_kv, b.layer_kv);
    EXPECT_EQ(a.logits, b.logits);
    EXPECT_NE(a.logits, f32.logits) << "the dtype changed nothing: are pages still f32?";
  }
}

// Compaction moves the stored rows unchanged: layer 0 (whose K/V do not
// depend on eviction) holds after eviction exactly the rows a full run
// stores at the kept positions, K and V, for every dtype.
TEST_F(EvictorDevicePathTest, KeptRowsAreTheStoredRowsOfTheKeptTokens) {
  for (kernels::KvDtype dtype : {kernels::KvDtype::kF32, kernels::KvDtype::kF16,
                                 kernels::KvDtype::kBf16, kernels::KvDtype::kQ8_0}) {
    SCOPED_TRACE(std::string(kernels::KvDtypeName(dtype)));
    kernels::cpu::CpuBackend host(2);
    const Result full = Run(host, "full", dtype);
    const Result evicted = Run(host, "snapkv", dtype);
    ASSERT_EQ(full.cached_len[0], 300);
    ASSERT_FALSE(evicted.kept.empty());
    const std::vector<std::vector<int32_t>>& keep = evicted.kept[0];
    const int32_t kept = evicted.cached_len[0], hkv = static_cast<int32_t>(keep.size());
    const int64_t d = static_cast<int64_t>(full.layer_kv[0].size()) / (2 * hkv * 300);
    for (int32_t half = 0; half < 2; ++half) {
      for (int32_t h = 0; h < hkv; ++h) {
        for (int32_t i = 0; i < kept; ++i) {
          const int64_t got = ((int64_t{half} * hkv + h) * kept + i) * d;
          const int64_t want = ((int64_t{half} * hkv + h) * 300 + keep[h][i]) * d;
          ASSERT_TRUE(std::equal(evicted.layer_kv[0].begin() + got,
                                 evicted.layer_kv[0].begin() + got + d,
                                 full.layer_kv[0].begin() + want))
              << (half ? "V" : "K") << " head " << h << " slot " << i << " token " << keep[h][i];
        }
      }
    }
  }
}

}  // namespace
}  // namespace restkv::engine
