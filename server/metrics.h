// ServerMetrics: the Prometheus metrics of `GET /metrics`, named in the
// `restkv:` namespace after vLLM's `vllm:` metrics, each labelled
// model_name="<served model>".
//
//   gauges      restkv:num_requests_running, restkv:num_requests_waiting,
//               restkv:kv_pages_total, restkv:kv_pages_used, restkv:kv_pages_free,
//               restkv:kv_cache_usage_perc (0..1), restkv:prefix_cache_blocks
//                 (cached full blocks, each a page per layer; unreferenced ones
//                 count as free pages, since allocation reclaims them)
//   counters    restkv:prompt_tokens_total, restkv:generation_tokens_total,
//               restkv:num_preemptions_total, restkv:kv_pages_released_by_eviction_total,
//               restkv:kv_tokens_evicted_total (token slots summed over layers),
//               restkv:prefix_cache_queries_total, restkv:prefix_cache_hits_total
//                 (prompt tokens looked up in the prefix cache, and found; vLLM's
//                 vllm:prefix_cache_queries and vllm:prefix_cache_hits)
//               restkv:request_success_total{finished_reason="stop|length|abort|error"}
//               restkv:step_cost_ms{term="layer_pass|token_layer|attention_pair"}
//                 (the engine's fitted step prices, scheduler/step_cost.h)
//   histograms  restkv:time_to_first_token_seconds, restkv:time_per_output_token_seconds,
//               restkv:e2e_request_latency_seconds, restkv:request_queue_time_seconds,
//               restkv:step_duration_seconds, restkv:step_decode_tokens,
//               restkv:step_prefill_token_layers (one sample per engine step; vLLM's
//                 nearest, vllm:iteration_tokens_total, counts prefill tokens, which a
//                 layer slice does not have, so these are restkv's own)
//
// Gauges and the token/preemption counters are copied from the engine's
// EngineStats snapshot at scrape time (counters advance by the difference
// since the last scrape, so they never go down); the per-request counter
// and histograms are fed by ObserveRequest as requests finish, the step
// histograms by ObserveStep (EngineOptions::on_step) after every step.
//
// Thread safety: every method is thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "engine/engine.h"
#include "engine/request_sink.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace restkv::server {

class ServerMetrics {
 public:
  explicit ServerMetrics(const std::string& model_name);
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Records one finished engine request (one choice of an API request).
  void ObserveRequest(const engine::RequestSummary& summary);

  // Records one engine step. Called on the engine thread; does not block
  // beyond the histograms' own short locks.
  void ObserveStep(const engine::StepRecord& step);

  // Updates the engine-derived metrics from `stats` and returns the text
  // exposition format (version 0.0.4).
  std::string Render(const engine::EngineStats& stats);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge* running_;
  prometheus::Gauge* waiting_;
  prometheus::Gauge* pages_total_;
  prometheus::Gauge* pages_used_;
  prometheus::Gauge* bytes_total_;
  prometheus::Gauge* bytes_used_;
  prometheus::Gauge* pages_free_;
  prometheus::Gauge* cache_usage_;
  prometheus::Counter* prompt_tokens_;
  prometheus::Counter* generation_tokens_;
  prometheus::Counter* preemptions_;
  prometheus::Counter* released_by_eviction_;
  prometheus::Counter* tokens_evicted_;
  prometheus::Counter* prefix_queries_;
  prometheus::Counter* prefix_hits_;
  prometheus::Gauge* prefix_blocks_;
  prometheus::Counter* success_stop_;
  prometheus::Counter* success_length_;
  prometheus::Counter* success_abort_;
  prometheus::Counter* success_error_;
  prometheus::Histogram* ttft_;
  prometheus::Histogram* tpot_;
  prometheus::Histogram* e2e_;
  prometheus::Histogram* queue_time_;
  prometheus::Histogram* step_duration_;
  prometheus::Histogram* step_decode_tokens_;
  prometheus::Histogram* step_prefill_token_layers_;
  prometheus::Gauge* cost_layer_pass_;
  prometheus::Gauge* cost_token_layer_;
  prometheus::Gauge* cost_attention_pair_;

  std::mutex mu_;                   // serialises Render's read-modify-write
  engine::EngineStats last_stats_;  // guarded by mu_: counters already exported
};

}  // namespace restkv::server
