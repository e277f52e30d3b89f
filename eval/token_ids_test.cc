#include "eval/token_ids.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace restkv::eval {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseTokenIds, WhitespaceCommasAndJsonArray) {
  EXPECT_THAT(*ParseTokenIds("1 2\n3\t4", 10), ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(*ParseTokenIds("5,6, 7 ,8\n", 10), ElementsAre(5, 6, 7, 8));
  EXPECT_THAT(*ParseTokenIds("  [0, 9]\n", 10), ElementsAre(0, 9));
}

TEST(ParseTokenIds, RejectsBadInput) {
  EXPECT_THAT(ParseTokenIds("", 10).status().message(), HasSubstr("empty"));
  EXPECT_THAT(ParseTokenIds("[ ]", 10).status().message(), HasSubstr("empty"));
  EXPECT_THAT(ParseTokenIds("1 x2", 10).status().message(), HasSubstr("item 1 ('x2')"));
  EXPECT_THAT(ParseTokenIds("1 2.5", 10).status().message(), HasSubstr("not an integer"));
  EXPECT_THAT(ParseTokenIds("3 10", 10).status().message(), HasSubstr("item 1 is 10, outside"));
  EXPECT_THAT(ParseTokenIds("-1", 10).status().message(), HasSubstr("outside"));
  EXPECT_THAT(ParseTokenIds("[1 2", 10).status().message(), HasSubstr("closing"));
}

}  // namespace
}  // namespace restkv::eval
