#include "cli/kv_dtype_flag.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace restkv::cli {
namespace {

TEST(KvDtypeFlag, AutoIsSixteenBitPerBackend) {
  EXPECT_EQ(*ResolveKvDtype("auto", "cpu"), kernels::KvDtype::kF16);
  EXPECT_EQ(*ResolveKvDtype("auto", "cuda"), kernels::KvDtype::kBf16);
}

TEST(KvDtypeFlag, NamedDtypesAreTakenAsGiven) {
  EXPECT_EQ(*ResolveKvDtype("f32", "cuda"), kernels::KvDtype::kF32);
  EXPECT_EQ(*ResolveKvDtype("bf16", "cpu"), kernels::KvDtype::kBf16);
  EXPECT_EQ(*ResolveKvDtype("q8_0", "cpu"), kernels::KvDtype::kQ8_0);
}

TEST(KvDtypeFlag, UnknownValuesNameTheFlagAndTheValue) {
  const auto r = ResolveKvDtype("fp8", "cpu");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), ::testing::HasSubstr("--kv-cache-dtype"));
  EXPECT_THAT(r.status().message(), ::testing::HasSubstr("'fp8'"));
  EXPECT_THAT(r.status().message(), ::testing::HasSubstr("q8_0"));
}

}  // namespace
}  // namespace restkv::cli
