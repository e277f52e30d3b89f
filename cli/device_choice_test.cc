// Device selection and random-weights models, on any machine (the CUDA cases
// check the no-GPU behaviour CI sees; with a GPU they check it is used).
#include "cli/device_choice.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "engine/model/model.h"
#include "gtest/gtest.h"

namespace restkv::cli {
namespace {

TEST(DeviceChoiceTest, CpuIsAlwaysAvailable) {
  DeviceFlags flags;
  flags.device = "cpu";
  auto b = CreateBackend(flags, 1);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->name(), "cpu");
  auto kv = KvCacheBytes(**b, flags, 12345, false);
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(*kv, 12345);
}

TEST(DeviceChoiceTest, AutoPicksAWorkingBackend) {
  auto b = CreateBackend({}, 1);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE((*b)->name() == "cpu" || (*b)->name() == "cuda");
  if (!BuiltWithCuda()) {
    EXPECT_EQ((*b)->name(), "cpu");
  }
}

TEST(DeviceChoiceTest, CudaWithoutBuildOrGpuIsAClearError) {
  DeviceFlags flags;
  flags.device = "cuda";
  auto b = CreateBackend(flags, 1);
  if (b.ok()) {
    EXPECT_EQ((*b)->name(), "cuda");  // a GPU machine
    return;
  }
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition) << b.status();
}

TEST(DeviceChoiceTest, RejectsBadUtilization) {
  for (double u : {0.0, -0.5, 1.5}) {
    DeviceFlags flags;
    flags.gpu_memory_utilization = u;
    EXPECT_EQ(CreateBackend(flags, 1).status().code(), absl::StatusCode::kInvalidArgument) << u;
  }
}

TEST(DeviceChoiceTest, UnknownShapeNamesTheKnownOnes) {
  auto p = RandomWeightsModel("llama9-1t", "");
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(p.status().message()).find("llama3-8b"), std::string::npos) << p.status();
}

TEST(DeviceChoiceTest, TinyRandomWeightsModelLoadsAndIsCached) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("restkv_random_weights_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto p = RandomWeightsModel("tiny", dir.string());
  ASSERT_TRUE(p.ok()) << p.status();
  const auto mtime = std::filesystem::last_write_time(*p);
  auto again = RandomWeightsModel("tiny", dir.string());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *p);
  EXPECT_EQ(std::filesystem::last_write_time(*again), mtime);
  DeviceFlags flags;
  flags.device = "cpu";
  auto backend = CreateBackend(flags, 1);
  ASSERT_TRUE(backend.ok());
  auto model = engine::Model::Load(*p, **backend);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->config().num_layers, 2);
  EXPECT_EQ((*model)->config().hidden_size, 256);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace restkv::cli
