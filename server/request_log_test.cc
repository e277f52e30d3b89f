#include "server/request_log.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

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
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    RequestLogger log(f);
    RequestLogEntry e;
    e.id = "cmpl-1";
    e.method = "POST";
    e.target = "/v1/completions";
    e.http_status = 404;
    e.note = "model 'x\n2026-01-01T00:00:00.000Z admin POST /v1/admin 200' does not exist";
    log.Log(e);
  }
  std::rewind(f);
  std::string text;
  char buf[512];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  std::fclose(f);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.find('\n'), text.size() - 1) << text;  // one physical line
  EXPECT_NE(text.find("model 'x\\n2026-01-01"), std::string::npos) << text;
}

}  // namespace
}  // namespace restkv::server
