#include "server/http_session.h"

#include <gtest/gtest.h>

namespace restkv::server {
namespace {

TEST(UnsupportedTransferCodingTest, OnlyPlainChunkedIsAccepted) {
  EXPECT_EQ(UnsupportedTransferCoding(""), std::nullopt);
  EXPECT_EQ(UnsupportedTransferCoding("chunked"), std::nullopt);
  EXPECT_EQ(UnsupportedTransferCoding(" Chunked "), std::nullopt);
  EXPECT_EQ(UnsupportedTransferCoding(", chunked,"), std::nullopt);  // empty elements
  EXPECT_EQ(UnsupportedTransferCoding("gzip, chunked"), "gzip");
  EXPECT_EQ(UnsupportedTransferCoding("chunked, deflate"), "deflate");
  EXPECT_EQ(UnsupportedTransferCoding("identity"), "identity");
}

}  // namespace
}  // namespace restkv::server
