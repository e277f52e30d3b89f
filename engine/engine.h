// Engine: the serving loop. One engine thread owns the model's forward pass,
// the KV page pool, the KV cache manager and the scheduler; frontends (CLI,
// HTTP, gRPC) talk to it only through Submit() / Cancel() and the per-request
// RequestSink.
//
//   frontend thread ──Submit/Cancel──> inbox (mutex) ──> engine thread:
//     loop { drain inbox; plan = scheduler.Schedule(); run forward passes;
//            sample; sink->OnTokens(...); finished -> sink->OnFinish, free }
//
// Guarantees:
// - Every accepted request gets exactly one OnFinish, and all its KV pages
//   return to the pool when it finishes, fails, is cancelled or the engine
//   shuts down.
// - Greedy outputs do not depend on what else is in the batch (the forward
//   kernels compute each row independently; see llama_model.h).
// - A request preempted for lack of pages is recomputed later from its prompt
//   and the tokens it already produced, under the same KV policy and budget
//   (so at the same footprint); its output continues unchanged. With an
//   evicting policy the prompt is re-prefilled alone and the produced tokens
//   are replayed as decodes, rebuilding exactly the cache it lost.
// - No request waits forever: one whose footprint can never fit the pool is
//   refused by Submit (or, should the scheduler find one, failed) with a
//   KvCapacityError (capacity_error.h); the queue head otherwise waits only
//   while others run. With nothing it can run the thread sleeps.
//
// Thread safety: Submit, Cancel, GetStats and Shutdown are thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "engine/capacity_error.h"
#include "engine/eviction/policy_config.h"
#include "engine/kv/block_pool.h"
#include "engine/kv/kv_cache_manager.h"
#include "engine/kv/kv_layer_hook.h"
#include "engine/kv/layer_evictor.h"
#include "engine/model/llama_model.h"
#include "engine/model/model.h"
#include "engine/request_sink.h"
#include "engine/sampling/sampling_params.h"
#include "engine/structured/grammar_compiler.h"
#include "engine/structured/grammar_matcher.h"
#include "scheduler/scheduler.h"
#include "scheduler/step_cost_model.h"

namespace restkv::engine {

// What one engine step did, for metrics (EngineOptions::on_step).
struct StepRecord {
  double step_ms = 0;     // measured: plan, forward passes, sampling
  double planned_ms = 0;  // what the step cost model predicted
  int32_t num_decode_tokens = 0;
  int64_t prefill_token_layers = 0;  // prefill tokens × layers run
};

struct EngineOptions {
  int64_t kv_cache_bytes = 1LL << 30;
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;  // an upper bound on every step, timed or not
  int32_t max_queue = 1024;   // unfinished (running + waiting) requests before Submit refuses
  int32_t max_model_len = 0;  // 0 = the model's context length
  // Step-time budget (scheduler.h): a step that carries decodes is planned
  // to take at most this long; one without, kLonePrefillStepFactor times as
  // long (step_budget.h). 0: none, the token budget alone. Frontends pass
  // DefaultMaxStepMs(backend) unless told otherwise.
  double max_step_ms = 0;
  // The step prices the engine starts fitting from; all zero: the device's
  // PriorStepCost (step_budget.h).
  scheduler::StepCost step_cost_prior;
  // Measures steps and request times; null: SteadyClock(). Must outlive the engine.
  const Clock* clock = nullptr;
  // Called on the engine thread after every step that ran; must not block.
  std::function<void(const StepRecord&)> on_step;
  // Automatic prefix caching (engine/kv/block_pool.h): requests without an
  // evicting policy reuse the KV pages of cached full blocks of their prompt.
  bool enable_prefix_caching = true;
};

struct EngineRequest {
  std::vector<int32_t> prompt_tokens;
  SamplingParams params;
  int32_t priority = 0;  // lower runs first
  std::shared_ptr<RequestSink> sink;
  KvPolicyConfig kv_policy;  // eviction during prefill (default: none)
  // >= 0: report the logprob of every prompt token after the first, with this
  // many top alternatives, once, through RequestSink::OnPromptLogprobs (the
  // completions API's echo + logprobs). Costs a [prompt][vocab] logits pass,
  // so Submit refuses prompts whose logits would pass kMaxPromptLogitsBytes.
  int32_t prompt_logprobs = -1;
  // Structured output: when set, every sampled token must keep the output a
  // prefix of a sentence of this grammar (disallowed logits are -inf before
  // sampling), end tokens are allowed only where it may end, and the request
  // stops (kStop) as soon as nothing but an end token could follow. From this
  // engine's grammar_compiler(); Submit refuses one over another vocabulary.
  std::shared_ptr<const structured::CompiledGrammar> grammar;
};
inline constexpr int64_t kMaxPromptLogitsBytes = 512LL << 20;

// A snapshot for metrics and logs.
struct EngineStats {
  // OK, or the backend's recorded failure (Backend::status(), e.g. a sticky
  // CUDA error): every later step would fail, so Submit refuses new requests
  // (Unavailable) and the server reports itself unhealthy.
  absl::Status backend_status;
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  int32_t kv_pages_total = 0;
  int32_t kv_pages_used = 0;
  int64_t kv_page_bytes = 0;  // bytes of one page in the pool's KV dtype
  int32_t kv_pages_high_water = 0;
  int64_t num_preemptions = 0;
  int64_t kv_pages_released_by_eviction = 0;
  int64_t kv_tokens_evicted_total = 0;
  int64_t prompt_tokens_total = 0;
  int64_t generation_tokens_total = 0;
  // Prefix cache, in tokens: prompt tokens of admissions that looked it up,
  // and those found cached; cached blocks (each one page per layer) now.
  int64_t prefix_cache_query_tokens = 0;
  int64_t prefix_cache_hit_tokens = 0;
  int32_t prefix_cache_blocks = 0;
  int64_t steps = 0;
  scheduler::StepCost step_cost;  // the fitted step prices (step_cost_model.h)
};

using RequestHandle = int64_t;

class Engine {
 public:
  // Creates the KV pool on the model's backend and starts the engine thread.
  // Errors: InvalidArgument for options out of range; ResourceExhausted if
  // the pool cannot be allocated.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(Model& model, const EngineOptions& options);
  // Shuts down (cancelling what is left) and joins the thread.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. On OK the sink will see exactly one OnFinish.
  // Errors: InvalidArgument (empty prompt; prompt or prompt + max_tokens past
  // max_model_len — the message names both lengths; bad sampling params;
  // no sink), KvCapacityError (capacity_error.h: the request's footprint can
  // never fit the KV pool — retrying cannot help; the message names the
  // numbers), ResourceExhausted (the queue is full: retry later),
  // Unavailable (shutting down, or the backend has failed: see
  // EngineStats::backend_status).
  absl::StatusOr<RequestHandle> Submit(EngineRequest request);
  // Cancels a queued or running request: its sink gets OnFinish(kCancelled)
  // and its pages are freed at the next step — or at the next layer boundary
  // when it is in the middle of a prefill slice that runs alone (the long
  // prefills, sliced by layers). Unknown or finished handles are ignored.
  void Cancel(RequestHandle handle);
  // Stops accepting requests; waits up to `drain_ms` for running and queued
  // requests to finish, then cancels the rest. Idempotent.
  void Shutdown(int64_t drain_ms);

  [[nodiscard]] EngineStats GetStats() const;
  [[nodiscard]] int32_t max_model_len() const { return max_model_len_; }
  // The largest max_tokens a request with a `prompt_len`-token prompt under
  // `policy` may ask for and still fit both max_model_len and the whole KV
  // pool (the check Submit makes); 0 when even the prompt cannot fit.
  // Thread-safe (reads only what is fixed at Create). Frontends use it as
  // the default max_tokens, and at start-up to warn when the pool cannot
  // hold one max_model_len request.
  [[nodiscard]] int32_t MaxTokensThatFit(int32_t prompt_len, const KvPolicyConfig& policy) const;
  [[nodiscard]] const Model& model() const { return model_; }
  // Compiles EngineRequest::grammar for this model's vocabulary; thread-safe.
  [[nodiscard]] structured::GrammarCompiler& grammar_compiler() const { return *grammars_; }

 private:
  struct RequestState;
  struct Work;
  struct StepPlan;
  struct SampleRow;
  Engine(Model& model, const EngineOptions& options, std::unique_ptr<BlockPool> pool);

  void Loop();
  void DrainInbox();
  // One engine step: PlanStep -> RunFullBatch / RunSlice -> SampleNext.
  // False when there was nothing it could run.
  bool Step();
  StepPlan PlanStep();
  // The forward-pass input of one request's work; its LayerHook goes in `hooks`.
  SequenceInput InputFor(const Work& w, std::deque<KvLayerHook>* hooks);
  // Every work item that runs all layers, in one forward pass.
  void RunFullBatch(const std::vector<Work>& works, std::vector<SampleRow>* rows);
  // One prefill slice of a layer range, alone.
  void RunSlice(const Work& w, std::vector<SampleRow>* rows);
  // Rows [row, row + rows) of `logits` are one sequence's (one per prompt
  // token when `all`, for prompt logprobs): reports those and queues the
  // last row for sampling.
  void CollectLogits(RequestState& a, const std::vector<float>& logits, int64_t row, int64_t rows,
                     bool all, std::vector<SampleRow>* out);
  // Samples the next token from `logits` [V], streams it and finishes the
  // request when the OutputProcessor says so; returns true if it finished.
  bool SampleNext(RequestState& a, const float* logits);
  void Finish(RequestHandle id, FinishReason reason, absl::Status error = absl::OkStatus());
  // KV pages a request may hold at its peak (Submit's capacity check).
  [[nodiscard]] int64_t PagesNeeded(int32_t prompt_len, int32_t max_tokens,
                                    const KvPolicyConfig& policy) const;
  void PublishStats();
  // Records what eviction did once a request's prefill reached layer L.
  void RecordPrefillEviction(RequestState& a, int32_t num_tokens);

  Model& model_;
  const EngineOptions options_;
  const int32_t max_model_len_;
  std::unique_ptr<BlockPool> pool_;
  KvCacheManager kv_;
  LayerEvictor evictor_;  // eviction during prefill, for every request
  scheduler::Scheduler scheduler_;
  const Clock& clock_;
  scheduler::StepCostModel step_cost_;  // fitted to this engine's measured steps
  std::map<RequestHandle, std::unique_ptr<RequestState>> requests_;  // engine thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<RequestHandle, EngineRequest>> inbox_;  // guarded by mu_
  std::vector<RequestHandle> cancels_;                         // guarded by mu_
  // Set by Cancel on the caller's thread and read by the engine thread
  // between the layers of a prefill slice run alone, so that a long prefill
  // stops at the next layer rather than at the end of the step. The map is
  // guarded by mu_; the flags themselves are atomic.
  std::map<RequestHandle, std::shared_ptr<std::atomic<bool>>> cancel_flags_;
  int32_t num_unfinished_ = 0;     // submitted, not yet finished; guarded by mu_
  bool accepting_ = true;          // guarded by mu_
  bool stop_ = false;              // guarded by mu_
  RequestHandle next_handle_ = 1;  // guarded by mu_
  EngineStats stats_;              // guarded by mu_ (published copy)

  EngineStats local_stats_;  // engine thread
  // Built once from the tokenizer; its own mutex guards the cache.
  const std::unique_ptr<structured::GrammarCompiler> grammars_;
  std::thread thread_;
};

}  // namespace restkv::engine
