#include "server/metrics.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace restkv::server {
namespace {

using ::testing::HasSubstr;

TEST(ServerMetricsTest, GaugesAndCountersFollowEngineStats) {
  ServerMetrics metrics("m");
  engine::EngineStats stats;
  stats.num_running = 2;
  stats.num_waiting = 3;
  stats.kv_pages_total = 100;
  stats.kv_pages_used = 25;
  stats.kv_page_bytes = 12288;  // the default model's page in f16
  stats.prompt_tokens_total = 40;
  stats.generation_tokens_total = 7;
  stats.num_preemptions = 1;
  std::string text = metrics.Render(stats);
  EXPECT_THAT(text, HasSubstr("restkv:num_requests_running{model_name=\"m\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("restkv:num_requests_waiting{model_name=\"m\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("restkv:kv_pages_total{model_name=\"m\"} 100\n"));
  EXPECT_THAT(text, HasSubstr("restkv:kv_pages_used{model_name=\"m\"} 25\n"));
  EXPECT_THAT(text, HasSubstr("restkv:kv_pages_free{model_name=\"m\"} 75\n"));
  EXPECT_THAT(text, HasSubstr("restkv:kv_cache_bytes_total{model_name=\"m\"} 1228800\n"));
  EXPECT_THAT(text, HasSubstr("restkv:kv_cache_bytes_used{model_name=\"m\"} 307200\n"));
  EXPECT_THAT(text, HasSubstr("restkv:kv_cache_usage_perc{model_name=\"m\"} 0.25\n"));
  EXPECT_THAT(text, HasSubstr("restkv:prompt_tokens_total{model_name=\"m\"} 40\n"));
  EXPECT_THAT(text, HasSubstr("restkv:generation_tokens_total{model_name=\"m\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("restkv:num_preemptions_total{model_name=\"m\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("restkv:kv_pages_released_by_eviction_total{model_name=\"m\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE restkv:prompt_tokens_total counter"));
  EXPECT_THAT(text, HasSubstr("# TYPE restkv:time_to_first_token_seconds histogram"));

  // Counters advance by the difference and never go down.
  stats.prompt_tokens_total = 50;
  stats.generation_tokens_total = 5;  // a stale snapshot must not decrease the counter
  text = metrics.Render(stats);
  EXPECT_THAT(text, HasSubstr("restkv:prompt_tokens_total{model_name=\"m\"} 50\n"));
  EXPECT_THAT(text, HasSubstr("restkv:generation_tokens_total{model_name=\"m\"} 7\n"));
}

TEST(ServerMetricsTest, FinishedRequestsFeedCountersAndHistograms) {
  ServerMetrics metrics("m");
  engine::RequestSummary s;
  s.reason = engine::FinishReason::kLength;
  s.completion_tokens = 11;
  s.queue_ms = 2;
  s.ttft_ms = 30;  // 0.03 s
  s.e2e_ms = 120;  // 10 more tokens in 90 ms => 0.009 s per token
  metrics.ObserveRequest(s);
  engine::RequestSummary cancelled;
  cancelled.reason = engine::FinishReason::kCancelled;
  cancelled.e2e_ms = 5;
  metrics.ObserveRequest(cancelled);
  const std::string text = metrics.Render({});
  EXPECT_THAT(
      text,
      HasSubstr("restkv:request_success_total{finished_reason=\"length\",model_name=\"m\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("restkv:request_success_total{finished_reason=\"abort\",model_name=\"m\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("restkv:request_success_total{finished_reason=\"stop\",model_name=\"m\"} 0\n"));
  // The cancelled request had no first token: one TTFT sample, two latency samples.
  EXPECT_THAT(text, HasSubstr("restkv:time_to_first_token_seconds_count{model_name=\"m\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("restkv:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"0.04\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("restkv:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"0.02\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("restkv:e2e_request_latency_seconds_count{model_name=\"m\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("restkv:time_per_output_token_seconds_count{model_name=\"m\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("restkv:time_per_output_token_seconds_bucket{model_name=\"m\",le=\"0.01\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("restkv:request_queue_time_seconds_count{model_name=\"m\"} 1\n"));
}

TEST(ServerMetricsTest, StepsFeedTheStepHistogramsAndPricesAreGauges) {
  ServerMetrics metrics("m");
  metrics.ObserveStep({.step_ms = 120, .num_decode_tokens = 8, .prefill_token_layers = 61440});
  metrics.ObserveStep({.step_ms = 4, .num_decode_tokens = 8, .prefill_token_layers = 0});
  engine::EngineStats stats;
  stats.step_cost = {0.25, 0.002, 1e-6};
  const std::string text = metrics.Render(stats);
  EXPECT_THAT(text, HasSubstr("# TYPE restkv:step_duration_seconds histogram"));
  EXPECT_THAT(text, HasSubstr("restkv:step_duration_seconds_count{model_name=\"m\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("restkv:step_duration_seconds_bucket{model_name=\"m\",le=\"0.1\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("restkv:step_duration_seconds_bucket{model_name=\"m\",le=\"0.15\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("restkv:step_decode_tokens_sum{model_name=\"m\"} 16\n"));
  EXPECT_THAT(text,
              HasSubstr("restkv:step_prefill_token_layers_bucket{model_name=\"m\",le=\"0\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("restkv:step_prefill_token_layers_sum{model_name=\"m\"} 61440\n"));
  EXPECT_THAT(text, HasSubstr("restkv:step_cost_ms{model_name=\"m\",term=\"layer_pass\"} 0.25\n"));
  EXPECT_THAT(text,
              HasSubstr("restkv:step_cost_ms{model_name=\"m\",term=\"token_layer\"} 0.002\n"));
}

}  // namespace
}  // namespace restkv::server
