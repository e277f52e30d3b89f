#include "server/auth.h"

#include "gtest/gtest.h"

namespace restkv::server {
namespace {

TEST(ApiKeyAuthTest, DisabledAllowsEverything) {
  ApiKeyAuth auth("");
  EXPECT_FALSE(auth.enabled());
  EXPECT_TRUE(auth.Check("").ok());
  EXPECT_TRUE(auth.Check("Bearer whatever").ok());
}

TEST(ApiKeyAuthTest, AcceptsOnlyTheBearerKey) {
  ApiKeyAuth auth("sk-secret");
  EXPECT_TRUE(auth.enabled());
  EXPECT_TRUE(auth.Check("Bearer sk-secret").ok());
  EXPECT_TRUE(auth.Check("bearer sk-secret").ok());
  EXPECT_TRUE(auth.Check("  Bearer   sk-secret  ").ok());
  for (const char* bad :
       {"", "sk-secret", "Bearer", "Bearer ", "Bearer sk-secre", "Bearer sk-secret2",
        "Basic sk-secret", "Bearer SK-SECRET", "Token sk-secret"}) {
    absl::Status s = auth.Check(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << "'" << bad << "'";
  }
  EXPECT_NE(auth.Check("").message().find("missing"), absl::string_view::npos);
  EXPECT_NE(auth.Check("Bearer nope").message().find("incorrect"), absl::string_view::npos);
}

TEST(ApiKeyAuthTest, PublicPaths) {
  EXPECT_TRUE(ApiKeyAuth::IsPublicPath("/health"));
  EXPECT_TRUE(ApiKeyAuth::IsPublicPath("/live"));
  EXPECT_TRUE(ApiKeyAuth::IsPublicPath("/metrics"));
  EXPECT_TRUE(ApiKeyAuth::IsPublicPath("/version"));
  EXPECT_FALSE(ApiKeyAuth::IsPublicPath("/v1/models"));
  EXPECT_FALSE(ApiKeyAuth::IsPublicPath("/v1/completions"));
  EXPECT_FALSE(ApiKeyAuth::IsPublicPath("/tokenize"));
  EXPECT_FALSE(ApiKeyAuth::IsPublicPath("/health/"));
}

}  // namespace
}  // namespace restkv::server
