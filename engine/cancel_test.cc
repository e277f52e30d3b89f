// Cancellation inside a long prefill: a prompt longer than the step's token
// budget is prefilled in layer slices run alone, and a cancel arriving while
// such a slice runs stops it at the next layer boundary (engine.h), instead of
// after the slice's remaining layers; its pages all come back.
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "engine/kv/page_math.h"
#include "engine/model/synthetic_model.h"
#include "engine/testing/finish_sink.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::engine {
namespace {

using Clock = FinishSink::Clock;

class CancelTest : public ::testing::Test {
 protected:
  static constexpr int32_t kLayers = 24;
  static constexpr int32_t kPrompt = 1500;

  void SetUp() override {
    SyntheticModelSpec spec;
    spec.num_layers = kLayers;
    spec.weight_type = kernels::GgmlType::kQ8_0;
    spec.context_length = 4096;
    path_ = (std::filesystem::temp_directory_path() /
             ("restkv_cancel_test_" + std::to_string(::getpid()) + ".gguf"))
                .string();
    std::ofstream(path_, std::ios::binary) << BuildSyntheticGguf(spec);
    backend_ = std::make_unique<kernels::cpu::CpuBackend>(2);
    model_ = *Model::Load(path_, *backend_);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  // A pool for one request, and a token budget that puts its whole prefill
  // but the last layer into the first step: one slice [0, L-1) run alone.
  std::unique_ptr<Engine> MakeEngine() {
    const auto& c = model_->config();
    EngineOptions opt;
    opt.kv_cache_bytes = 4096LL * KvPageShape{c.num_kv_heads, c.head_dim, 16}.page_bytes();
    opt.max_num_batched_tokens = kPrompt * (kLayers - 1) / kLayers + 1;
    return *Engine::Create(*model_, opt);
  }
  EngineRequest Request(std::shared_ptr<RequestSink> sink) {
    EngineRequest r;
    for (int i = 0; i < kPrompt; ++i) r.prompt_tokens.push_back((i * 37 + 11) % 256);
    r.params.temperature = 0;
    r.params.max_tokens = 1;
    r.params.ignore_eos = true;
    r.sink = std::move(sink);
    return r;
  }

  std::string path_;
  std::unique_ptr<kernels::cpu::CpuBackend> backend_;
  std::unique_ptr<Model> model_;
};

TEST_F(CancelTest, CancelDuringAPrefillSliceStopsAtTheNextLayer) {
  const KvPageMath math{kLayers, 16};
  const int64_t slice_pages = (kLayers - 1) * math.PagesFor(kPrompt);

  // Uncancelled: how long the first slice takes, and what it holds.
  auto engine = MakeEngine();
  auto sink = std::make_shared<FinishSink>();
  const Clock::time_point t0 = Clock::now();
  ASSERT_TRUE(engine->Submit(Request(sink)).ok());
  ASSERT_EQ(sink->Wait().reason, FinishReason::kLength);
  const double full_ms = std::chrono::duration<double, std::milli>(sink->at() - t0).count();
  EXPECT_GE(engine->GetStats().kv_pages_high_water, slice_pages);
  engine->Shutdown(0);

  // Cancelled a quarter of the way into the slice.
  engine = MakeEngine();
  sink = std::make_shared<FinishSink>();
  auto handle = engine->Submit(Request(sink));
  ASSERT_TRUE(handle.ok());
  std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(full_ms / 4));
  const Clock::time_point cancelled_at = Clock::now();
  engine->Cancel(*handle);
  EXPECT_EQ(sink->Wait().reason, FinishReason::kCancelled);
  const double after_ms =
      std::chrono::duration<double, std::milli>(sink->at() - cancelled_at).count();
  const EngineStats st = engine->GetStats();
  EXPECT_EQ(st.kv_pages_used, 0) << "pages leaked";
  EXPECT_EQ(st.num_running + st.num_waiting, 0);
  // It stopped before the slice's last layer: not all its pages were taken,
  // and the cancel took effect well before the slice could have ended.
  EXPECT_LT(st.kv_pages_high_water, slice_pages);
  EXPECT_LT(after_ms, full_ms / 2) << "uncancelled run took " << full_ms << " ms";
  engine->Shutdown(0);
}

}  // namespace
}  // namespace restkv::engine
