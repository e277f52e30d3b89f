#include "server/metrics.h"

#include <algorithm>
#include <vector>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace restkv::server {
namespace {

// Bucket bounds in seconds: vLLM's, with finer low buckets for TPOT since a
// small model decodes a token in a few milliseconds.
const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                          0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                          20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
const std::vector<double> kTpotBuckets = {0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075,
                                          0.1,   0.15,   0.2,   0.3,    0.4,  0.5,   0.75, 1.0,
                                          2.5,   5.0,    7.5,   10.0,   20.0, 40.0,  80.0};
const std::vector<double> kLatencyBuckets = {0.3,  0.5,   0.8,   1.0,   1.5,   2.0,    2.5,
                                             5.0,  10.0,  15.0,  20.0,  30.0,  40.0,   50.0,
                                             60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

// Step time from 1 ms to 60 s (the bound is ~100-150 ms; the tail shows
// where it was broken); decodes per step up to max_num_seqs' usual range;
// prefill token-layers from a short prompt to a 128k-token layer slice.
const std::vector<double> kStepBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075,
                                          0.1,   0.15,   0.2,   0.3,  0.5,   0.75, 1.0,
                                          2.5,   5.0,    10.0,  20.0, 60.0};
const std::vector<double> kDecodeTokenBuckets = {0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
const std::vector<double> kTokenLayerBuckets = {0,     256,    1024,    4096,    16384,
                                                65536, 262144, 1048576, 4194304, 16777216};

}  // namespace

ServerMetrics::ServerMetrics(const std::string& model_name)
    : registry_(std::make_shared<prometheus::Registry>()) {
  const prometheus::Labels labels = {{"model_name", model_name}};
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_).Add(labels);
  };
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_).Add(labels);
  };
  auto histogram = [&](const char* name, const char* help, const std::vector<double>& buckets) {
    return &prometheus::BuildHistogram()
                .Name(name)
                .Help(help)
                .Register(*registry_)
                .Add(labels, buckets);
  };
  running_ = gauge("restkv:num_requests_running", "Requests being computed (prefill or decode).");
  waiting_ = gauge("restkv:num_requests_waiting", "Requests queued, waiting to be scheduled.");
  pages_total_ = gauge("restkv:kv_pages_total", "KV cache pages in the pool.");
  pages_used_ = gauge("restkv:kv_pages_used", "KV cache pages held by requests.");
  pages_free_ = gauge("restkv:kv_pages_free", "KV cache pages free.");
  bytes_total_ = gauge("restkv:kv_cache_bytes_total",
                       "Bytes of the KV cache pool, in its KV dtype (--kv-cache-dtype).");
  bytes_used_ = gauge("restkv:kv_cache_bytes_used", "Bytes of KV cache pages held by requests.");
  cache_usage_ = gauge("restkv:kv_cache_usage_perc", "Fraction of KV cache pages in use (0..1).");
  prompt_tokens_ = counter("restkv:prompt_tokens_total", "Prompt tokens admitted.");
  generation_tokens_ = counter("restkv:generation_tokens_total", "Tokens generated.");
  preemptions_ =
      counter("restkv:num_preemptions_total", "Requests preempted for lack of KV pages.");
  released_by_eviction_ = counter("restkv:kv_pages_released_by_eviction_total",
                                  "KV pages returned to the pool by eviction during prefill.");
  tokens_evicted_ = counter("restkv:kv_tokens_evicted_total",
                            "Cached token slots evicted during prefill, summed over layers.");
  prefix_queries_ =
      counter("restkv:prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.");
  prefix_hits_ =
      counter("restkv:prefix_cache_hits_total", "Prompt tokens found in the prefix cache.");
  prefix_blocks_ = gauge("restkv:prefix_cache_blocks",
                         "Full blocks in the prefix cache (one KV page per layer each).");
  auto& success = prometheus::BuildCounter()
                      .Name("restkv:request_success_total")
                      .Help("Finished requests by finish reason.")
                      .Register(*registry_);
  auto reason = [&](const char* r) {
    prometheus::Labels l = labels;
    l["finished_reason"] = r;
    return &success.Add(l);
  };
  success_stop_ = reason("stop");
  success_length_ = reason("length");
  success_abort_ = reason("abort");
  success_error_ = reason("error");
  ttft_ = histogram("restkv:time_to_first_token_seconds", "Time to first token.", kTtftBuckets);
  tpot_ = histogram("restkv:time_per_output_token_seconds",
                    "Mean time per output token after the first, per request.", kTpotBuckets);
  e2e_ = histogram("restkv:e2e_request_latency_seconds", "End-to-end request latency.",
                   kLatencyBuckets);
  queue_time_ = histogram("restkv:request_queue_time_seconds",
                          "Time from arrival until first scheduled.", kLatencyBuckets);
  step_duration_ = histogram("restkv:step_duration_seconds",
                             "Engine step time: plan, forward passes, sampling.", kStepBuckets);
  step_decode_tokens_ =
      histogram("restkv:step_decode_tokens", "Decode tokens per engine step.", kDecodeTokenBuckets);
  step_prefill_token_layers_ =
      histogram("restkv:step_prefill_token_layers",
                "Prefill work per engine step, in prompt tokens times layers.", kTokenLayerBuckets);
  auto& cost = prometheus::BuildGauge()
                   .Name("restkv:step_cost_ms")
                   .Help("Fitted price of one unit of step work, in milliseconds.")
                   .Register(*registry_);
  auto term = [&](const char* t) {
    prometheus::Labels l = labels;
    l["term"] = t;
    return &cost.Add(l);
  };
  cost_layer_pass_ = term("layer_pass");
  cost_token_layer_ = term("token_layer");
  cost_attention_pair_ = term("attention_pair");
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::ObserveRequest(const engine::RequestSummary& s) {
  switch (s.reason) {
    case engine::FinishReason::kStop:
      success_stop_->Increment();
      break;
    case engine::FinishReason::kLength:
      success_length_->Increment();
      break;
    case engine::FinishReason::kCancelled:
      success_abort_->Increment();
      break;
    case engine::FinishReason::kError:
      success_error_->Increment();
      break;
  }
  e2e_->Observe(s.e2e_ms / 1000.0);
  // A request cancelled or failed before its first token has no TTFT, and
  // its queue time is not known to have ended.
  if (s.completion_tokens > 0) {
    ttft_->Observe(s.ttft_ms / 1000.0);
    queue_time_->Observe(s.queue_ms / 1000.0);
  }
  if (s.completion_tokens > 1) {
    tpot_->Observe((s.e2e_ms - s.ttft_ms) / 1000.0 / (s.completion_tokens - 1));
  }
}

void ServerMetrics::ObserveStep(const engine::StepRecord& step) {
  step_duration_->Observe(step.step_ms / 1000.0);
  step_decode_tokens_->Observe(step.num_decode_tokens);
  step_prefill_token_layers_->Observe(static_cast<double>(step.prefill_token_layers));
}

std::string ServerMetrics::Render(const engine::EngineStats& stats) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cost_layer_pass_->Set(stats.step_cost.ms_per_layer_pass);
    cost_token_layer_->Set(stats.step_cost.ms_per_token_layer);
    cost_attention_pair_->Set(stats.step_cost.ms_per_attention_pair);
    running_->Set(stats.num_running);
    waiting_->Set(stats.num_waiting);
    pages_total_->Set(stats.kv_pages_total);
    pages_used_->Set(stats.kv_pages_used);
    pages_free_->Set(stats.kv_pages_total - stats.kv_pages_used);
    bytes_total_->Set(static_cast<double>(stats.kv_pages_total) *
                      static_cast<double>(stats.kv_page_bytes));
    bytes_used_->Set(static_cast<double>(stats.kv_pages_used) *
                     static_cast<double>(stats.kv_page_bytes));
    cache_usage_->Set(stats.kv_pages_total > 0
                          ? static_cast<double>(stats.kv_pages_used) / stats.kv_pages_total
                          : 0.0);
    auto advance = [](prometheus::Counter* c, int64_t now, int64_t* last) {
      if (now > *last) c->Increment(static_cast<double>(now - *last));
      *last = std::max(*last, now);
    };
    advance(prompt_tokens_, stats.prompt_tokens_total, &last_stats_.prompt_tokens_total);
    advance(generation_tokens_, stats.generation_tokens_total,
            &last_stats_.generation_tokens_total);
    advance(preemptions_, stats.num_preemptions, &last_stats_.num_preemptions);
    advance(released_by_eviction_, stats.kv_pages_released_by_eviction,
            &last_stats_.kv_pages_released_by_eviction);
    advance(tokens_evicted_, stats.kv_tokens_evicted_total, &last_stats_.kv_tokens_evicted_total);
    advance(prefix_queries_, stats.prefix_cache_query_tokens,
            &last_stats_.prefix_cache_query_tokens);
    advance(prefix_hits_, stats.prefix_cache_hit_tokens, &last_stats_.prefix_cache_hit_tokens);
    prefix_blocks_->Set(stats.prefix_cache_blocks);
  }
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

}  // namespace restkv::server
