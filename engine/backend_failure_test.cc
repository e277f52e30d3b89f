// A backend that fails mid-step (a sticky CUDA error, a scratch allocation
// that could not be made) fails the requests of that step with an internal
// error naming the reason, returns their pages, and then refuses new requests
// as Unavailable instead of running them on a broken device; the engine
// thread keeps running.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "engine/engine.h"
#include "engine/model/synthetic_model.h"
#include "engine/testing/finish_sink.h"
#include "gtest/gtest.h"
#include "kernels/cpu/testing/forwarding_backend.h"

namespace restkv::engine {
namespace {

// Computes like the CPU until its attention has run `calls_left` times;
// then, like a CUDA backend after a failed launch, writes nothing and
// reports the failure through status() from then on.
class FailingBackend final : public kernels::ForwardingBackend {
 public:
  explicit FailingBackend(int calls_left) : ForwardingBackend(2), left_(calls_left) {}
  std::string_view name() const override { return "failing"; }
  absl::Status status() const override {
    return left_ < 0 ? absl::InternalError("an illegal memory access was encountered")
                     : absl::OkStatus();
  }
  void Attention(const float* q, absl::Span<const kernels::AttentionSeq> seqs, int32_t heads,
                 const kernels::KvPageLayout& kv, float scale, float* out) override {
    if (--left_ < 0) return;
    cpu_.Attention(q, seqs, heads, kv, scale, out);
  }

 private:
  int left_;
};

TEST(BackendFailureTest, FailsTheStepsRequestsThenRefusesNewOnes) {
  SyntheticModelSpec spec;
  spec.num_layers = 4;
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("restkv_backend_failure_" + std::to_string(::getpid()) + ".gguf"))
                               .string();
  std::ofstream(path, std::ios::binary) << BuildSyntheticGguf(spec);
  // One prompt's prefill (4 layers) and two decode steps succeed.
  FailingBackend backend(/*calls_left=*/spec.num_layers + 2 * spec.num_layers);
  auto model = *Model::Load(path, backend);
  std::filesystem::remove(path);
  auto engine = *Engine::Create(*model, EngineOptions{});

  auto sink = std::make_shared<FinishSink>();
  EngineRequest req;
  req.prompt_tokens = {1, 2, 3, 4, 5};
  req.params.max_tokens = 8;
  req.params.ignore_eos = true;
  req.sink = sink;
  ASSERT_TRUE(engine->Submit(req).ok());
  const RequestSummary s = sink->Wait();
  EXPECT_EQ(s.reason, FinishReason::kError);
  EXPECT_EQ(s.error.code(), absl::StatusCode::kInternal) << s.error;
  EXPECT_NE(s.error.message().find("illegal memory access"), std::string::npos) << s.error;
  EXPECT_EQ(s.completion_tokens, 3) << "one from the prefill, two from the decodes that ran";

  // The stats are published after the step that failed.
  EngineStats stats = engine->GetStats();
  for (int i = 0; i < 1000 && (stats.backend_status.ok() || stats.kv_pages_used != 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    stats = engine->GetStats();
  }
  EXPECT_FALSE(stats.backend_status.ok());
  EXPECT_EQ(stats.kv_pages_used, 0);
  req.sink = std::make_shared<FinishSink>();
  const auto again = engine->Submit(req);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kUnavailable) << again.status();
  EXPECT_NE(again.status().message().find("illegal memory access"), std::string::npos);
}

}  // namespace
}  // namespace restkv::engine
