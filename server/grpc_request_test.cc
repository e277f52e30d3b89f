#include "server/grpc_request.h"

#include "engine/capacity_error.h"
#include "gtest/gtest.h"
#include "server/grpc_service.h"

namespace restkv::server {
namespace {

TEST(GrpcRequestTest, UnsetFieldsKeepDefaults) {
  restkv::v1::GenerateRequest r;
  r.set_text("hi");
  GenerationFields f = GenerationFieldsFromProto(r);
  const engine::SamplingParams defaults;
  EXPECT_EQ(f.params.temperature, defaults.temperature);
  EXPECT_EQ(f.params.top_p, defaults.top_p);
  EXPECT_EQ(f.params.logprobs, -1);
  EXPECT_FALSE(f.params.seed.has_value());
  EXPECT_FALSE(f.max_tokens.has_value());
  EXPECT_FALSE(f.kv_policy.has_value());
  EXPECT_FALSE(f.kv_budget.has_value());
}

TEST(GrpcRequestTest, SetFieldsAreCopied) {
  restkv::v1::GenerateRequest r;
  r.set_temperature(0);
  r.set_top_k(5);
  r.set_seed(7);
  r.set_max_tokens(3);
  r.add_stop("\n");
  r.add_stop_token_ids(2);
  r.set_ignore_eos(true);
  r.set_logprobs(2);
  r.set_priority(-1);
  r.set_kv_policy("snapkv");
  r.set_kv_budget(64);
  GenerationFields f = GenerationFieldsFromProto(r);
  EXPECT_EQ(f.params.temperature, 0.0f);
  EXPECT_EQ(f.params.top_k, 5);
  EXPECT_EQ(f.params.seed, 7u);
  EXPECT_EQ(f.max_tokens, 3);
  ASSERT_EQ(f.params.stop.size(), 1u);
  EXPECT_EQ(f.params.stop[0], "\n");
  EXPECT_EQ(f.params.stop_token_ids, std::vector<int32_t>{2});
  EXPECT_TRUE(f.params.ignore_eos);
  EXPECT_EQ(f.params.logprobs, 2);
  EXPECT_EQ(f.priority, -1);
  EXPECT_EQ(f.kv_policy, "snapkv");
  EXPECT_EQ(f.kv_budget, 64);
  EXPECT_TRUE(ValidateGenerationFields(f).ok());
}

TEST(GrpcRequestTest, ValidationNamesTheField) {
  GenerationFields f;
  f.max_tokens = 0;
  absl::Status s = ValidateGenerationFields(f);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("max_tokens"), std::string_view::npos);
  f.max_tokens = 4;
  f.params.stop = {""};
  EXPECT_EQ(ValidateGenerationFields(f).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GrpcRequestTest, StatusCodesMap) {
  EXPECT_EQ(ToGrpcStatus(absl::OkStatus()).error_code(), grpc::StatusCode::OK);
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("x")).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ToGrpcStatus(absl::FailedPreconditionError("x")).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("x")).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ToGrpcStatus(engine::KvCapacityError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ToGrpcStatus(absl::UnavailableError("x")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ToGrpcStatus(absl::UnauthenticatedError("x")).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ToGrpcStatus(absl::InternalError("boom")).error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("msg")).error_message(), "msg");
}

}  // namespace
}  // namespace restkv::server
