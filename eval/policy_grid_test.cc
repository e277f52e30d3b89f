#include "eval/policy_grid.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace restkv::eval {
namespace {

std::vector<std::string> Labels(const std::vector<PolicySetting>& grid) {
  std::vector<std::string> out;
  for (const PolicySetting& s : grid) out.push_back(s.label);
  return out;
}

TEST(PolicyGrid, AdaKvVariantsAreTheirOwnRows) {
  auto grid = BuildPolicyGrid({"full", "restkv", "restkv+adakv", "snapkv+adakv", "lacache"}, {},
                              {0.1}, {"restkv:kernel_size=7"});
  ASSERT_TRUE(grid.ok()) << grid.status();
  EXPECT_THAT(Labels(*grid), ::testing::ElementsAre("full", "restkv@10%", "restkv+adakv@10%",
                                                    "snapkv+adakv@10%", "lacache@10%"));
  const auto& g = *grid;
  EXPECT_EQ(g[1].config.adaptive, engine::AdaptiveBudget::kNone);
  EXPECT_EQ(g[2].config.adaptive, engine::AdaptiveBudget::kAdaKv);
  EXPECT_EQ(g[2].config.kernel_size, 7) << "restkv: options reach the +adakv row too";
  EXPECT_EQ(g[3].config.kind, engine::KvPolicyKind::kSnapKv);
  EXPECT_EQ(g[3].PolicyName(), "snapkv+adakv");
}

TEST(PolicyGrid, BadAdaKvSpecs) {
  EXPECT_FALSE(BuildPolicyGrid({"restkv+pyramid"}, {64}, {}, {}).ok());
  // tova has no candidate scores to share between heads.
  auto bad = BuildPolicyGrid({"tova+adakv"}, {64}, {}, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("adaptive"));
}

}  // namespace
}  // namespace restkv::eval
