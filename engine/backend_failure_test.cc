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
#include "kernels/cpu/testing/failing_backend.h"

namespace restkv::engine {
namespace {

TEST(BackendFailureTest, FailsTheStepsRequestsThenRefusesNewOnes) {
  SyntheticModelSpec spec;
  spec.num_layers = 4;
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("restkv_backend_failure_" + std::to_string(::getpid()) + ".gguf"))
                               .string();
  std::ofstream(path, std::ios::binary) << BuildSyntheticGguf(spec);
  // One prompt's prefill (4 layers) and two decode steps succeed.
  kernels::FailingBackend backend(/*attention_calls_left=*/spec.num_layers + 2 * spec.num_layers,
                                  absl::InternalError("an illegal memory access was encountered"));
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
