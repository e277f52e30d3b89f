// Scheduler: continuous batching as a pure, synchronous step function.
//
// Each Schedule() call plans one engine step: which running requests decode
// one token, which prompts prefill which range of layers, and which requests
// lose their KV cache (preemption). Update() takes back what the step did.
// No threads, clocks, tensors or I/O: the KV cache is reached only through
// the KvAllocator interface, so plans can be tested on numbers alone.
//
// Ordering: requests are served by (priority ascending, arrival ascending) —
// first come first served within a priority; lower priority values run first
// (as vLLM). The waiting queue is never skipped: if its head does not fit,
// nothing behind it is admitted that step.
//
// Progress: the head waits only while something runs, and whatever runs
// finishes or is preempted (victims come from the tail of the order, so the
// first running request is never preempted for a later one). When nothing
// runs and the head still does not fit the then empty pool, it can never fit:
// Schedule() reports it in `unschedulable` for the caller to fail, so no
// request waits forever and an empty plan never repeats.
//
// Step budget: every step is bounded by max_num_batched_tokens × L
// token-layers and, with max_step_ms > 0, by time: the StepCost passed to
// Schedule() prices the plan (step_cost.h) so that a step that carries
// decodes is planned to take at most max_step_ms — the inter-token time of
// every decoding request — and one without decodes at most
// lone_prefill_step_ms. Within the budget, decodes go first, then prefills:
// half of their budget by least remaining work (short prompts are not queued
// behind long ones), the rest oldest first, by layer slices or chunks.
//
// Thread safety: none; owned by the engine thread.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <tuple>
#include <vector>

#include "absl/types/span.h"
#include "scheduler/kv_allocator.h"
#include "scheduler/step_cost.h"

namespace restkv::scheduler {

struct SchedulerConfig {
  int32_t num_layers = 1;                 // L
  int32_t max_num_seqs = 64;              // running requests at once
  int32_t max_num_batched_tokens = 2048;  // per step, counted as tokens × L token-layers
  // Planned milliseconds of a step that carries decodes; 0: no time budget.
  double max_step_ms = 0;
  // Planned milliseconds of a step without decodes (prefill only); 0: no
  // time budget for those. Only with max_step_ms > 0.
  double lone_prefill_step_ms = 0;
};

// NOTE(restkv): the prefill budget of a step is split. This share goes to
// the candidates with the least work left first (shortest remaining), the
// rest to all of them oldest first. Shortest-remaining alone minimises the
// mean time to first token but starves a long prompt under a stream of
// short ones; oldest-first alone (today's FCFS) queues a short prompt behind
// minutes of long prefills. Split in half, a short prompt that arrives gets
// work in the very next step (its first token as soon as half the budget
// has paid for it) and a stream of them slows a long prefill at most
// twofold.
inline constexpr double kShortestFirstShare = 0.5;
// A step that carries decodes still gives prefills at least this share of
// max_step_ms when the decodes alone would take more (scheduler.cc).
inline constexpr double kMinPrefillShare = 0.5;

struct NewRequest {
  RequestId id = 0;
  int32_t priority = 0;
  int32_t num_prompt_tokens = 0;
  // Its KV cache after prefill depends on the prompt alone (an eviction
  // policy selects among the prompt's tokens): a recompute after preemption
  // prefills the prompt only, then replays the tokens it had generated as
  // decode steps that produce nothing new, so the rebuilt cache (and so the
  // continuation) equals the one it lost. Without it a recompute prefills
  // prompt + output at once.
  bool replay_output_on_recompute = false;
  // Its prefill may split a layer into chunks of tokens across steps (the
  // eviction policy, if any, scores with at most the last kMinLastChunkTokens
  // queries, and no step needs every prompt row's logits): the smallest unit
  // of work is then a chunk of one layer, not a whole layer.
  bool chunkable = false;
};

// The smallest chunk of a layer split by tokens (smaller ones would spend
// more on the layer's weights than on its rows), and the least the last
// chunk of a layer holds, so that the queries an eviction policy scores with
// (its observation window) are all in the chunk that ends the layer.
inline constexpr int32_t kMinChunkTokens = 64;
inline constexpr int32_t kMinLastChunkTokens = 512;

// Prefill of layers [layer_begin, layer_end) over the first `num_tokens`
// tokens of the request (its prompt, plus its earlier output when it is
// recomputed after preemption). layer_end == L (with token_end ==
// num_tokens) means the step also yields the request's next token.
//
// A chunk (chunkable requests only) is one layer over token rows
// [token_begin, token_end): their queries attend the layer's cached K/V of
// rows < token_end; the layer is complete, and evicted, after the chunk with
// token_end == num_tokens. Otherwise token_begin = 0, token_end = num_tokens.
//
//   layer l:  [ rows done in earlier steps | this chunk | later chunks ]
//             0                token_begin        token_end     num_tokens
//
// With a cached prefix (KvAllocator::AcquirePrefix) rows [0, prefix_tokens)
// of every layer are mapped from the prefix cache, not computed: a slice
// that is not a chunk runs rows [prefix_tokens, num_tokens), and chunks
// start there.
struct PrefillSlice {
  RequestId id = 0;
  int32_t num_tokens = 0;
  int32_t layer_begin = 0;
  int32_t layer_end = 0;
  int32_t token_begin = 0;
  int32_t token_end = 0;
  int32_t prefix_tokens = 0;
  [[nodiscard]] bool is_chunk() const {
    return token_begin > prefix_tokens || token_end < num_tokens;
  }
};

struct SchedulerOutput {
  std::vector<RequestId> decodes;  // one new token each, all layers
  std::vector<PrefillSlice> prefills;
  std::vector<RequestId> preempted;  // KV freed this step; will be recomputed
  // Waiting requests that cannot fit even the empty pool (nothing runs): the
  // caller must Remove() them (failing them); at most one per step.
  std::vector<RequestId> unschedulable;
  int64_t token_layers = 0;          // work planned
  int64_t prefill_token_layers = 0;  // of which prefill
  StepWork work;                     // what StepCost prices (step_cost.h)
  [[nodiscard]] bool empty() const { return decodes.empty() && prefills.empty(); }
};

class Scheduler {
 public:
  // `kv` must outlive the scheduler.
  Scheduler(const SchedulerConfig& config, KvAllocator& kv);

  // Queues a request. REQUIRES: id not known, num_prompt_tokens >= 1, and its
  // prefill peak fits the empty pool (the engine checks before calling).
  void Add(const NewRequest& request);
  // Forgets a request at any stage (finished, cancelled, failed) and frees
  // its pages. Unknown ids are ignored.
  void Remove(RequestId id);

  // Plans the next step with `cost` pricing it (used only with
  // max_step_ms > 0). Allocates the KV pages the plan needs.
  // NOTE(restkv): there are no separate prefill and decode phases per step:
  //   1. every decoding request gets one token, in priority order; if its
  //      page cannot be allocated, the lowest-priority running request is
  //      preempted (possibly itself) until it can;
  //   2. the prefill candidates are the prefilling requests, then the
  //      waiting ones that admission would take in order (free pages minus
  //      pages reserved for admitted prefills cover their prefill peak,
  //      running < max_num_seqs);
  //   3. the budget left after the decodes (token-layers and, when timed,
  //      milliseconds, at least kMinPrefillShare of the step) goes first,
  //      within kShortestFirstShare of it, to the candidates with the least
  //      remaining work, then to all of them oldest first; each gets as much
  //      as fits: all its remaining layers (a whole prompt joins the decodes'
  //      batched call), a slice of layers, or for a chunkable request whose
  //      next layer does not fit, a chunk of a layer. The oldest candidate
  //      always gets at least one layer or the smallest chunk, and so does
  //      the shortest when nothing else fit (progress), even past the budget;
  //   4. a waiting candidate is admitted if it or one behind it got work
  //      (the queue is never reordered for pages); admitted ones without
  //      work this step keep their pages reserved and continue in 3.
  SchedulerOutput Schedule(const StepCost& cost = {});

  // Records the step's effects: prefill slices advance (a slice ending at
  // layer L produced a token), each decode produced a token — except the
  // steps of a recompute that only replay known tokens (see NewRequest).
  void Update(const SchedulerOutput& output);

  [[nodiscard]] int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  [[nodiscard]] int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  [[nodiscard]] int64_t num_preemptions() const { return num_preemptions_; }
  [[nodiscard]] bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  // Pages promised to admitted prefills that they do not hold yet.
  [[nodiscard]] int32_t ReservedPages() const;
  // Tokens generated so far (survives preemption).
  [[nodiscard]] int32_t NumOutputTokens(RequestId id) const;
  [[nodiscard]] bool IsDecoding(RequestId id) const;
  // Tokens whose K/V the request's cache holds (or, while waiting or
  // prefilling, will hold once its prefill ends: the prefill length). A
  // decode's input is the token at this position — the newest one, or a
  // known one being replayed after preemption — and it samples only when
  // that is the newest.
  [[nodiscard]] int32_t NumCachedTokens(RequestId id) const;

 private:
  enum class Phase { kWaiting, kPrefilling, kDecoding };
  struct Entry {
    NewRequest request;
    int64_t arrival = 0;
    Phase phase = Phase::kWaiting;
    int32_t num_output = 0;   // tokens generated
    int32_t layers_done = 0;  // prefill progress of the current attempt
    int32_t tokens_done = 0;  // rows of layer layers_done run so far (chunks), from prefix
    int32_t prefix = 0;       // rows mapped from the prefix cache on every layer
    int32_t replay = 0;       // known output tokens still to feed back (recompute)
  };
  using OrderKey = std::tuple<int32_t, int64_t, RequestId>;  // (priority, arrival, id)

  [[nodiscard]] OrderKey KeyOf(const Entry& e) const {
    return {e.request.priority, e.arrival, e.request.id};
  }
  [[nodiscard]] int32_t PrefillTokens(const Entry& e) const {
    return e.request.num_prompt_tokens + (e.request.replay_output_on_recompute ? 0 : e.num_output);
  }
  struct Budget;  // what is left of a step (scheduler.cc)
  // The work of `layers` more prefill layers of `e`; `joins_batch`: it runs
  // in the step's batched call, whose layer passes are already paid.
  [[nodiscard]] StepWork PrefillWork(const Entry& e, int32_t layers, bool joins_batch) const;
  // Most prefill layers of `e` (up to its remaining ones) that fit `budget`.
  [[nodiscard]] int32_t LayersThatFit(const Entry& e, const Budget& budget, const StepCost& cost,
                                      bool batch_open) const;
  // The end of the smallest chunk e's current layer may have (progress).
  [[nodiscard]] int32_t SmallestChunkEnd(const Entry& e) const;
  // What is left of e's prefill, in milliseconds at `cost` (token-layers
  // when cost is zero): the order of the shortest-remaining share.
  [[nodiscard]] double RemainingCost(const Entry& e, const StepCost& cost) const;
  // The work of rows [e.tokens_done, token_end) of layer e.layers_done, alone.
  [[nodiscard]] StepWork ChunkWork(const Entry& e, int32_t token_end) const;
  // The end of the largest chunk of e's current layer that fits `budget`,
  // at least kMinChunkTokens long and leaving the layer's last chunk at
  // least kMinLastChunkTokens; e.tokens_done if none fits.
  [[nodiscard]] int32_t ChunkThatFits(const Entry& e, const Budget& budget,
                                      const StepCost& cost) const;
  // The decodes' share of a step's work (the batched call's passes apart).
  [[nodiscard]] StepWork DecodeWork(absl::Span<const RequestId> decodes) const;
  // The work of a planned step, as the engine will run it.
  [[nodiscard]] StepWork WorkOf(const SchedulerOutput& out) const;
  void Preempt(Entry& e, SchedulerOutput& out);
  // A step that ran `e` to its end of layers: one more output token, or one
  // fewer to replay.
  static void ProduceOrReplay(Entry& e);

  const SchedulerConfig config_;
  KvAllocator& kv_;
  std::map<RequestId, Entry> entries_;
  std::set<OrderKey> waiting_;
  std::set<OrderKey> running_;  // prefilling or decoding
  int64_t next_arrival_ = 0;
  int64_t num_preemptions_ = 0;
};

}  // namespace restkv::scheduler
