#include "bench/grpc_client.h"

#include "bench/runner.h"
#include "bench/summary.h"
#include "gtest/gtest.h"

namespace restkv::bench {
namespace {

TEST(GrpcErrorKind, MapsStatusesAndWatchdogReasons) {
  const grpc::Status ok = grpc::Status::OK;
  const grpc::Status cancelled(grpc::StatusCode::CANCELLED, "x");
  EXPECT_EQ(GrpcErrorKind(ok, false, false), "");
  // A call that ended well is not an error even if the watchdog had fired.
  EXPECT_EQ(GrpcErrorKind(ok, true, false), "");
  EXPECT_EQ(GrpcErrorKind(cancelled, true, false), "stall");
  EXPECT_EQ(GrpcErrorKind(cancelled, false, true), "timeout");
  EXPECT_EQ(GrpcErrorKind(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, ""), false, false),
            "timeout");
  EXPECT_EQ(GrpcErrorKind(grpc::Status(grpc::StatusCode::UNAVAILABLE, ""), false, false),
            "grpc_UNAVAILABLE");
  EXPECT_EQ(GrpcErrorKind(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, ""), false, false),
            "grpc_RESOURCE_EXHAUSTED");
  EXPECT_EQ(GrpcCodeName(static_cast<grpc::StatusCode>(42)), "CODE_42");
}

TEST(GrpcTarget, RejectsAddressesWithoutPort) {
  EXPECT_TRUE(GrpcTarget::Create("127.0.0.1:50051", "").ok());
  EXPECT_TRUE(GrpcTarget::Create("grpc://localhost:1", "").ok());
  for (const char* bad : {"", "localhost", "localhost:", ":80", "host:8x"}) {
    auto t = GrpcTarget::Create(bad, "");
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(MakeGenerateRequest, CarriesTheWorkloadsParameters) {
  WorkloadOptions o;
  o.model = "m";
  o.temperature = 0.5;
  o.ignore_eos = true;
  WorkItem item;
  item.prompt = " the house";
  item.output_tokens = 7;
  restkv::v1::GenerateRequest r = MakeGenerateRequest(o, item);
  EXPECT_EQ(r.model(), "m");
  EXPECT_EQ(r.text(), " the house");
  EXPECT_EQ(r.max_tokens(), 7);
  EXPECT_FLOAT_EQ(r.temperature(), 0.5f);
  EXPECT_TRUE(r.ignore_eos());
  o.chat = true;
  o.ignore_eos = false;
  r = MakeGenerateRequest(o, item);
  ASSERT_EQ(r.input_case(), restkv::v1::GenerateRequest::kChat);
  ASSERT_EQ(r.chat().messages_size(), 1);
  EXPECT_EQ(r.chat().messages(0).role(), "user");
  EXPECT_EQ(r.chat().messages(0).content(), " the house");
  EXPECT_FALSE(r.ignore_eos());
}

TEST(Summarize, StreamedTokenIdsMustMatchUsage) {
  StreamResult r;
  r.ok = true;
  r.chunk_times = {Clock::time_point{} + std::chrono::milliseconds(5)};
  r.done = r.chunk_times[0];
  r.usage_completion_tokens = 4;
  r.streamed_tokens = 4;  // one message carried all four ids: consistent
  WorkItem item;
  std::vector<RequestRecord> recs = {
      MakeRecord(0, Clock::time_point{}, Clock::time_point{}, item, r)};
  EXPECT_EQ(recs[0].streamed_tokens, 4);
  EXPECT_EQ(Summarize(recs, 1.0, {}).usage_mismatches, 0);
  EXPECT_EQ(RecordJson(recs[0])["streamed_tokens"], 4);
  r.streamed_tokens = 3;  // an id went missing
  recs = {MakeRecord(0, Clock::time_point{}, Clock::time_point{}, item, r)};
  EXPECT_EQ(Summarize(recs, 1.0, {}).usage_mismatches, 1);
  r.streamed_tokens = -1;  // HTTP: not carried, not checked
  recs = {MakeRecord(0, Clock::time_point{}, Clock::time_point{}, item, r)};
  EXPECT_EQ(Summarize(recs, 1.0, {}).usage_mismatches, 0);
  EXPECT_FALSE(RecordJson(recs[0]).contains("streamed_tokens"));
}

}  // namespace
}  // namespace restkv::bench
