#include "server/request_log.h"

#include <gtest/gtest.h>

#include <string>

#include "server/testing/log_capture.h"

namespace restkv::server {
namespace {

TEST(EscapeForLogTest, ControlCharactersBecomeEscapes) {
  EXPECT_EQ(EscapeForLog("plain text, no change"), "plain text, no change");
  EXPECT_EQ(EscapeForLog("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(EscapeForLog(std::string("nul\0end", 7)), "nul\\x00end");
  EXPECT_EQ(EscapeForLog("\x1b[31mred\x7f"), "\\x1b[31mred\\x7f");
  // The backslash is escaped too, so "\\n" in the input cannot pass for an escape.
  EXPECT_EQ(EscapeForLog("back\\slash"), "back\\\\slash");
  EXPECT_EQ(EscapeForLog("ünïcödé €"), "ünïcödé €");
}

TEST(RequestLoggerTest, AForgedLineStaysOnItsOwnLine) {
  LogCapture capture;
  ASSERT_NE(capture.file(), nullptr);
  {
    RequestLogger log(capture.file());
    RequestLogEntry e;
    e.id = "cmpl-1";
    e.method = "POST";
    e.target = "/v1/completions";
    e.http_status = 404;
    e.note = "model 'x\n2026-01-01T00:00:00.000Z admin POST /v1/admin 200' does not exist";
    log.Log(e);
  }
  const std::string text = capture.Text();
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.find('\n'), text.size() - 1) << text;  // one physical line
  EXPECT_NE(text.find("model 'x\\n2026-01-01"), std::string::npos) << text;
}

}  // namespace
}  // namespace restkv::server
