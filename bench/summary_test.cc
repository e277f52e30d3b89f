#include "bench/summary.h"

#include <cmath>

#include "bench/runner.h"
#include "bench/workload.h"
#include "gtest/gtest.h"

namespace restkv::bench {
namespace {

TEST(Percentile, InterpolatesLikeNumpy) {
  EXPECT_DOUBLE_EQ(Percentile({1, 2, 3, 4}, 50), 2.5);
  EXPECT_DOUBLE_EQ(Percentile({1, 2, 3, 4}, 99), 3.97);
  EXPECT_DOUBLE_EQ(Percentile({5}, 90), 5);
  EXPECT_TRUE(std::isnan(Percentile({}, 50)));
}

TEST(MakeRecord, LatenciesCountFromTheIntendedSendTime) {
  const Clock::time_point start{};
  const auto ms = [&](int x) { return start + std::chrono::milliseconds(x); };
  StreamResult r;
  r.ok = true;
  r.sent = ms(150);  // the sender was 50 ms late
  r.chunk_times = {ms(300), ms(320), ms(360)};
  r.done = ms(370);
  r.usage_completion_tokens = 5;
  r.usage_prompt_tokens = 12;
  WorkItem item;
  item.output_tokens = 5;
  const RequestRecord rec = MakeRecord(3, start, ms(100), item, r);
  EXPECT_DOUBLE_EQ(rec.ttft_ms, 200);
  EXPECT_DOUBLE_EQ(rec.e2el_ms, 270);
  EXPECT_DOUBLE_EQ(rec.tpot_ms, 70.0 / 4);
  EXPECT_EQ(rec.itl_ms, (std::vector<double>{20, 40}));
  EXPECT_EQ(rec.output_tokens, 5);
  EXPECT_DOUBLE_EQ(rec.sent_s - rec.intended_s, 0.05);
}

TEST(Summarize, VllmKeysThroughputGoodputAndErrors) {
  std::vector<RequestRecord> recs(4);
  for (int i = 0; i < 3; ++i) {
    recs[i].ok = true;
    recs[i].ttft_ms = 100.0 * (i + 1);
    recs[i].tpot_ms = 10;
    recs[i].e2el_ms = 1000;
    recs[i].output_tokens = 10;
    recs[i].prompt_tokens = 20;
    recs[i].itl_ms = {10, 10};
    recs[i].done_s = 1;
  }
  recs[3].error_kind = "stall";
  auto slo = ParseGoodput({"ttft:250", "e2el:2000"});
  ASSERT_TRUE(slo.ok());
  const Summary s = Summarize(recs, 2.0, *slo);
  EXPECT_EQ(s.completed, 3);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.errors.at("stall"), 1);
  EXPECT_DOUBLE_EQ(s.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(s.output_throughput, 15);
  EXPECT_DOUBLE_EQ(s.request_goodput, 1.0);  // two of three within 250 ms TTFT
  EXPECT_DOUBLE_EQ(s.latency.at("median_ttft_ms"), 200);
  EXPECT_DOUBLE_EQ(s.latency.at("mean_itl_ms"), 10);
  const auto j = SummaryJson(s);
  for (const char* k :
       {"mean_ttft_ms", "median_tpot_ms", "std_itl_ms", "p99_e2el_ms", "p90_ttft_ms",
        "request_throughput", "output_throughput", "request_goodput", "failed", "completed",
        "total_input_tokens", "total_output_tokens", "duration"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  EXPECT_FALSE(ParseGoodput({"ttft"}).ok());
  EXPECT_FALSE(ParseGoodput({"latency:5"}).ok());
}

TEST(Workload, ClampsOrSkipsLongRequestsAndCountsThem) {
  std::vector<TraceRequest> reqs(3);
  reqs[0].input_len = 100, reqs[0].output_len = 10;
  reqs[1].input_len = 3000, reqs[1].output_len = 10;
  reqs[2].input_len = 10, reqs[2].output_len = 5000;
  WorkloadOptions o;
  o.model = "m";
  o.max_model_len = 2048;
  const PromptBuilder b = PromptBuilder::Unchecked(0);
  Workload w = BuildWorkload(reqs, b, o, nullptr);
  EXPECT_EQ(w.items.size(), 3u);
  EXPECT_EQ(w.clamped, 2);
  EXPECT_LE(w.items[1].input_tokens + w.items[1].output_tokens, 2048);
  EXPECT_LE(w.items[2].output_tokens, 1024);
  o.skip_long = true;
  w = BuildWorkload(reqs, b, o, nullptr);
  EXPECT_EQ(w.items.size(), 1u);
  EXPECT_EQ(w.skipped_long, 2);
  const auto body = nlohmann::json::parse(w.items[0].body);
  EXPECT_EQ(body["max_tokens"], 10);
  EXPECT_EQ(body["ignore_eos"], true);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
}

}  // namespace
}  // namespace restkv::bench
