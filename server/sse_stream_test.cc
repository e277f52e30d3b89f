#include "server/sse_stream.h"

#include "gtest/gtest.h"

namespace restkv::server {
namespace {

TEST(SseStreamTest, OneLineEvent) {
  EXPECT_EQ(FormatSseEvent(R"({"a":1})"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(kSseDone, "data: [DONE]\n\n");
}

TEST(SseStreamTest, JsonWithNewlinesInStringsStaysOneLine) {
  const std::string event = FormatSseJson({{"text", "line 1\nline 2"}});
  EXPECT_EQ(event, "data: {\"text\":\"line 1\\nline 2\"}\n\n");
}

TEST(SseStreamTest, MultiLinePayloadBecomesSeveralDataLines) {
  EXPECT_EQ(FormatSseEvent("a\nb\r\nc"), "data: a\ndata: b\ndata: c\n\n");
  EXPECT_EQ(FormatSseEvent(""), "data: \n\n");
}

TEST(SseStreamTest, InvalidUtf8IsReplacedNotThrown) {
  const std::string event = FormatSseJson({{"text", std::string("ok\xF0\x9F", 4)}});
  EXPECT_EQ(event, "data: {\"text\":\"ok\xEF\xBF\xBD\"}\n\n");
}

}  // namespace
}  // namespace restkv::server
