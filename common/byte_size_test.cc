#include "common/byte_size.h"

#include "gtest/gtest.h"

namespace restkv {
namespace {

TEST(ByteSizeTest, ParsesUnits) {
  EXPECT_EQ(*ParseByteSize("1000"), 1000);
  EXPECT_EQ(*ParseByteSize("2GiB"), 2LL << 30);
  EXPECT_EQ(*ParseByteSize("2G"), 2LL << 30);
  EXPECT_EQ(*ParseByteSize("2GB"), 2000000000LL);
  EXPECT_EQ(*ParseByteSize("1.5 MiB"), 1572864);
  EXPECT_EQ(*ParseByteSize("512mib"), 512LL << 20);
  EXPECT_EQ(*ParseByteSize("3KB"), 3000);
}

TEST(ByteSizeTest, RejectsGarbage) {
  for (const char* bad : {"", "GiB", "-1G", "12XB", "1e9", "abc"}) {
    auto r = ParseByteSize(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_NE(ParseByteSize("12XB").status().message().find("12XB"), std::string::npos);
}

TEST(ByteSizeTest, Formats) {
  EXPECT_EQ(FormatByteSize(512), "512 B");
  EXPECT_EQ(FormatByteSize(3LL << 30), "3.00 GiB");
}

}  // namespace
}  // namespace restkv
