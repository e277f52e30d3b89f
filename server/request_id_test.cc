#include "server/request_id.h"

#include <string>

#include "gtest/gtest.h"

namespace restkv::server {
namespace {

TEST(RequestIdTest, SanitisesAndBounds) {
  EXPECT_EQ(SanitizeRequestId("abc-123_x.y:z"), "abc-123_x.y:z");
  EXPECT_EQ(SanitizeRequestId("  padded  "), "padded");
  EXPECT_EQ(SanitizeRequestId("a b\"c<d>"), "a_b_c_d_");
  EXPECT_EQ(SanitizeRequestId("\xC3\xA9t\xC3\xA9"), "__t__");
  EXPECT_EQ(SanitizeRequestId(""), "");
  EXPECT_EQ(SanitizeRequestId(" \t "), "");
  EXPECT_EQ(SanitizeRequestId(std::string(500, 'x')).size(), kMaxRequestIdLength);
}

}  // namespace
}  // namespace restkv::server
