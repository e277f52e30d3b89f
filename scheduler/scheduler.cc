#include "scheduler/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/check.h"

namespace restkv::scheduler {

Scheduler::Scheduler(const SchedulerConfig& config, KvAllocator& kv) : config_(config), kv_(kv) {
  RESTKV_CHECK_GE(config.num_layers, 1);
  RESTKV_CHECK_GE(config.max_num_seqs, 1);
  RESTKV_CHECK_GE(config.max_num_batched_tokens, 1);
}

void Scheduler::Add(const NewRequest& request) {
  RESTKV_CHECK_GE(request.num_prompt_tokens, 1);
  RESTKV_CHECK(entries_.count(request.id) == 0) << "request " << request.id << " added twice";
  Entry e;
  e.request = request;
  e.arrival = next_arrival_++;
  waiting_.insert(KeyOf(e));
  entries_.emplace(request.id, e);
}

void Scheduler::Remove(RequestId id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  waiting_.erase(KeyOf(it->second));
  running_.erase(KeyOf(it->second));
  kv_.Free(id);
  entries_.erase(it);
}

int32_t Scheduler::ReservedPages() const {
  int32_t reserved = 0;
  for (const OrderKey& key : running_) {
    const Entry& e = entries_.at(std::get<2>(key));
    if (e.phase != Phase::kPrefilling) continue;
    const int32_t held = kv_.PagesHeld(e.request.id);
    reserved += std::max(0, kv_.PrefillPeakPages(e.request.id, PrefillTokens(e)) - held);
  }
  return reserved;
}

int32_t Scheduler::NumOutputTokens(RequestId id) const {
  auto it = entries_.find(id);
  return it == entries_.end() ? 0 : it->second.num_output;
}

bool Scheduler::IsDecoding(RequestId id) const {
  auto it = entries_.find(id);
  return it != entries_.end() && it->second.phase == Phase::kDecoding;
}

int32_t Scheduler::NumCachedTokens(RequestId id) const {
  auto it = entries_.find(id);
  if (it == entries_.end()) return 0;
  const Entry& e = it->second;
  if (e.phase != Phase::kDecoding) return PrefillTokens(e);
  // Every token produced but the newest (not yet fed back) is cached, less
  // those still to replay.
  return e.request.num_prompt_tokens + e.num_output - 1 - e.replay;
}

void Scheduler::ProduceOrReplay(Entry& e) {
  if (e.replay > 0) {
    --e.replay;
  } else {
    ++e.num_output;
  }
}

void Scheduler::Preempt(Entry& e, SchedulerOutput& out) {
  running_.erase(KeyOf(e));
  kv_.Release(e.request.id);
  e.phase = Phase::kWaiting;
  e.layers_done = 0;
  e.tokens_done = 0;
  e.prefix = 0;
  // The prefill rebuilds the prompt and yields the first output token again;
  // the other num_output - 1 are fed back by decodes; all of them are known.
  e.replay = e.request.replay_output_on_recompute ? e.num_output : 0;
  waiting_.insert(KeyOf(e));
  out.preempted.push_back(e.request.id);
  ++num_preemptions_;
}

// What is left of one step: token-layers and planned milliseconds
// (infinite when the step is not timed).
struct Scheduler::Budget {
  int64_t token_layers = 0;
  double ms = std::numeric_limits<double>::infinity();

  [[nodiscard]] bool Fits(const StepWork& w, const StepCost& cost) const {
    return w.token_layers <= token_layers && cost.Ms(w) <= ms;
  }
  void Charge(const StepWork& w, const StepCost& cost) {
    token_layers -= w.token_layers;
    ms -= cost.Ms(w);
  }
  [[nodiscard]] Budget Share(double share) const {
    return {static_cast<int64_t>(static_cast<double>(token_layers) * share), ms * share};
  }
};

StepWork Scheduler::PrefillWork(const Entry& e, int32_t layers, bool joins_batch) const {
  const int64_t n = PrefillTokens(e);
  const bool whole = e.layers_done == 0 && layers == config_.num_layers;
  StepWork w;
  w.layer_passes = whole && joins_batch ? 0 : layers;
  w.token_layers = (n - e.prefix) * layers;
  w.attention_pairs = CausalPairs(e.prefix, n) * layers;
  return w;
}

int32_t Scheduler::LayersThatFit(const Entry& e, const Budget& budget, const StepCost& cost,
                                 bool batch_open) const {
  const int32_t remaining = config_.num_layers - e.layers_done;
  if (budget.Fits(PrefillWork(e, remaining, batch_open), cost)) return remaining;
  // A slice short of the end runs alone: each layer pays its own pass.
  const StepWork one = PrefillWork(e, 1, false);
  int64_t layers = std::max<int64_t>(0, budget.token_layers) / one.token_layers;
  const double layer_ms = cost.Ms(one);
  if (std::isfinite(budget.ms) && layer_ms > 0) {
    layers = std::min<int64_t>(layers, static_cast<int64_t>(std::max(0.0, budget.ms) / layer_ms));
  }
  return static_cast<int32_t>(std::min<int64_t>(layers, remaining - 1));
}

int32_t Scheduler::SmallestChunkEnd(const Entry& e) const {
  const int32_t n = PrefillTokens(e);
  const int32_t end = std::min(n - kMinLastChunkTokens, e.tokens_done + kMinChunkTokens);
  return end - e.tokens_done >= kMinChunkTokens ? end : n;
}

double Scheduler::RemainingCost(const Entry& e, const StepCost& cost) const {
  const int32_t n = PrefillTokens(e);
  const int32_t layers = config_.num_layers - e.layers_done;
  // The rest of the current layer, then the layers after it; in token-layers
  // when the step is not timed.
  const StepWork w =
      ChunkWork(e, n) + StepWork{layers - 1, static_cast<int64_t>(n - e.prefix) * (layers - 1),
                                 CausalPairs(e.prefix, n) * (layers - 1)};
  return cost.is_zero() ? static_cast<double>(w.token_layers) : cost.Ms(w);
}

StepWork Scheduler::ChunkWork(const Entry& e, int32_t token_end) const {
  return {1, token_end - e.tokens_done, CausalPairs(e.tokens_done, token_end)};
}

int32_t Scheduler::ChunkThatFits(const Entry& e, const Budget& budget, const StepCost& cost) const {
  const int32_t t0 = e.tokens_done;
  const int32_t n = PrefillTokens(e);
  // Work grows with the chunk's end: binary search for the last end that fits.
  int32_t lo = t0, hi = n;
  while (lo < hi) {
    const int32_t mid = lo + (hi - lo + 1) / 2;
    if (budget.Fits(ChunkWork(e, mid), cost)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  if (lo == n) return n;
  const int32_t end = std::min(lo, n - kMinLastChunkTokens);
  return end - t0 >= kMinChunkTokens ? end : t0;
}

SchedulerOutput Scheduler::Schedule(const StepCost& cost) {
  SchedulerOutput out;
  const int32_t L = config_.num_layers;
  const bool timed = config_.max_step_ms > 0;
  const StepCost price = timed ? cost : StepCost{};
  Budget budget;
  budget.token_layers = static_cast<int64_t>(config_.max_num_batched_tokens) * L;

  // 1. Decodes, highest priority first; victims come from the tail.
  std::vector<OrderKey> order(running_.begin(), running_.end());
  for (size_t i = 0; i < order.size(); ++i) {
    if (running_.count(order[i]) == 0) continue;  // preempted below
    Entry& e = entries_.at(std::get<2>(order[i]));
    if (e.phase != Phase::kDecoding) continue;
    if (budget.token_layers < L) break;
    bool scheduled = false;
    while (true) {
      const int32_t need = kv_.DecodePages(e.request.id, 1);
      if (need <= kv_.NumFreePages() - ReservedPages()) {
        RESTKV_CHECK(kv_.AllocateDecode(e.request.id, 1)) << "request " << e.request.id;
        scheduled = true;
        break;
      }
      // Preempt the lowest-priority running request (the last in order).
      Entry& victim = entries_.at(std::get<2>(*running_.rbegin()));
      Preempt(victim, out);
      if (&victim == &e) break;
    }
    if (!scheduled) continue;
    out.decodes.push_back(e.request.id);
    budget.token_layers -= L;
  }
  bool batch_open = !out.decodes.empty();  // the batched call's L layer passes are paid
  if (timed) {
    const double limit = batch_open ? config_.max_step_ms : config_.lone_prefill_step_ms;
    StepWork decode_work = DecodeWork(out.decodes);
    if (batch_open) decode_work.layer_passes += L;
    // NOTE(restkv): prefills keep at least kMinPrefillShare of a step even
    // when the decodes alone take more: otherwise a batch of decodes that
    // outgrew the budget would leave prompts only the forced smallest unit,
    // and time to first token (and, through the clients waiting on it,
    // throughput) would collapse while the bound is broken anyway.
    if (limit > 0) {
      budget.ms =
          std::max(limit - price.Ms(decode_work), batch_open ? kMinPrefillShare * limit : 0.0);
    }
  }

  // 2. Prefill candidates: prefills under way, then the waiting requests
  // admission would take, in order.
  struct Candidate {
    Entry* e;
    bool waiting;
    int32_t layers = 0;     // planned this step
    int32_t chunk_end = 0;  // or a chunk of layer layers_done, rows [tokens_done, chunk_end)
    StepWork work;          // of the above
    [[nodiscard]] bool has_work() const { return layers > 0 || chunk_end > 0; }
  };
  std::vector<Candidate> candidates;
  for (const OrderKey& key : running_) {
    Entry& e = entries_.at(std::get<2>(key));
    if (e.phase == Phase::kPrefilling) candidates.push_back({&e, false});
  }
  int32_t free_pages = kv_.NumFreePages() - ReservedPages();
  int32_t num_running = static_cast<int32_t>(running_.size());
  for (const OrderKey& key : waiting_) {
    if (num_running >= config_.max_num_seqs) break;
    Entry& e = entries_.at(std::get<2>(key));
    // A request preempted this step waits for the next: re-admitting it at
    // once would recompute it only to preempt it again.
    if (std::find(out.preempted.begin(), out.preempted.end(), e.request.id) !=
        out.preempted.end()) {
      break;
    }
    const int32_t peak = kv_.PrefillPeakPages(e.request.id, PrefillTokens(e));
    if (peak > free_pages) break;
    free_pages -= peak;
    // Planned from its cached prefix; mapped if admitted (step 4).
    e.prefix = kv_.CachedPrefixTokens(e.request.id, PrefillTokens(e));
    e.tokens_done = e.prefix;
    ++num_running;
    candidates.push_back({&e, true});
  }

  // 3. Prefill work: by least remaining work first within a share of the
  // budget, then oldest first with the rest.
  auto give = [&](Candidate& c, Budget& share, bool force) {
    Entry& e = *c.e;
    if (c.has_work()) return;
    const bool mid_layer = e.tokens_done > e.prefix;
    StepWork w;
    const int32_t layers = mid_layer ? 0 : LayersThatFit(e, share, price, batch_open);
    if (layers > 0) {
      c.layers = layers;
    } else if (mid_layer || e.request.chunkable) {
      int32_t chunk_end = ChunkThatFits(e, share, price);
      if (chunk_end == e.tokens_done && force) chunk_end = SmallestChunkEnd(e);
      if (chunk_end == e.tokens_done) return;
      c.chunk_end = chunk_end;
    } else if (force) {
      c.layers = 1;
    } else {
      return;
    }
    w = c.layers > 0 ? PrefillWork(e, c.layers, batch_open) : ChunkWork(e, c.chunk_end);
    c.work = w;
    share.Charge(w, price);
    if (&share != &budget) budget.Charge(w, price);
    batch_open |= e.layers_done == 0 && c.layers == L;
  };
  // Whether c's planned work ends its prefill.
  auto completes = [&](const Candidate& c) {
    const Entry& e = *c.e;
    return c.layers > 0 ? e.layers_done + c.layers == L
                        : e.layers_done + 1 == L && c.chunk_end == PrefillTokens(e);
  };
  std::vector<Candidate*> by_remaining;
  for (Candidate& c : candidates) by_remaining.push_back(&c);
  std::stable_sort(by_remaining.begin(), by_remaining.end(),
                   [&](const Candidate* a, const Candidate* b) {
                     return RemainingCost(*a->e, price) < RemainingCost(*b->e, price);
                   });
  Budget shortest = budget.Share(kShortestFirstShare);
  for (Candidate* c : by_remaining) give(*c, shortest, false);
  for (Candidate& c : candidates) {
    if (c.has_work()) {
      if (completes(c)) continue;
      // Partial work from the share (a slice or chunk, run alone: it opened
      // no batch) is replanned with what is left, which can only grow it.
      budget.token_layers += c.work.token_layers;
      budget.ms += price.Ms(c.work);
      c.layers = c.chunk_end = 0;
    }
    give(c, budget, false);
  }
  // Progress, past the budget if need be: the oldest candidate always moves,
  // and so does the one with least work left (the oldest is never starved by
  // younger ones, nor a short prompt kept behind a long one).
  if (!candidates.empty()) {
    const bool any_work = std::any_of(candidates.begin(), candidates.end(),
                                      [](const Candidate& c) { return c.has_work(); });
    give(candidates.front(), budget, true);
    if (!any_work) give(*by_remaining.front(), budget, true);
  }

  // 4. Admit the waiting candidates up to the last one with work, in order;
  // allocate every slice.
  size_t admit_end = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (candidates[i].waiting && candidates[i].has_work()) admit_end = i + 1;
  }
  for (size_t i = 0; i < candidates.size(); ++i) {
    Candidate& c = candidates[i];
    Entry& e = *c.e;
    if (c.waiting) {
      if (i >= admit_end) break;
      waiting_.erase(KeyOf(e));
      e.phase = Phase::kPrefilling;
      running_.insert(KeyOf(e));
      // Nothing was allocated since step 2 looked, so the same blocks match.
      RESTKV_CHECK_EQ(kv_.AcquirePrefix(e.request.id, PrefillTokens(e)), e.prefix)
          << "request " << e.request.id;
    }
    if (!c.has_work()) continue;
    const int32_t n = PrefillTokens(e);
    const int32_t layers = c.layers > 0 ? c.layers : 1;
    RESTKV_CHECK(kv_.CoversPrefill(e.request.id, n, e.layers_done, e.layers_done + layers))
        << "pages of request " << e.request.id
        << " (reserved or checked at admission) are not there";
    out.prefills.push_back({e.request.id, n, e.layers_done, e.layers_done + layers,
                            c.layers > 0 ? e.prefix : e.tokens_done, c.layers > 0 ? n : c.chunk_end,
                            e.prefix});
  }
  if (running_.empty() && !waiting_.empty()) {
    // Nothing holds a page, yet the head was not admitted: it never will be.
    out.unschedulable.push_back(std::get<2>(*waiting_.begin()));
  }
  out.work = WorkOf(out);
  out.token_layers = static_cast<int64_t>(out.decodes.size()) * L;
  for (const PrefillSlice& p : out.prefills) {
    out.prefill_token_layers +=
        static_cast<int64_t>(p.token_end - p.token_begin) * (p.layer_end - p.layer_begin);
  }
  out.token_layers += out.prefill_token_layers;
  return out;
}

StepWork Scheduler::DecodeWork(absl::Span<const RequestId> decodes) const {
  const int32_t L = config_.num_layers;
  StepWork w;
  for (RequestId id : decodes) {
    w.token_layers += L;
    // The input token attends the cached ones and itself, on every layer.
    w.attention_pairs += static_cast<int64_t>(NumCachedTokens(id) + 1) * L;
  }
  return w;
}

StepWork Scheduler::WorkOf(const SchedulerOutput& out) const {
  const int32_t L = config_.num_layers;
  StepWork w = DecodeWork(out.decodes);
  bool batch = !out.decodes.empty();
  for (const PrefillSlice& p : out.prefills) {
    const int64_t layers = p.layer_end - p.layer_begin;
    const bool whole = p.layer_begin == 0 && p.layer_end == L && !p.is_chunk();
    batch |= whole;
    if (!whole) w.layer_passes += layers;
    w.token_layers += static_cast<int64_t>(p.token_end - p.token_begin) * layers;
    w.attention_pairs += CausalPairs(p.token_begin, p.token_end) * layers;
  }
  if (batch) w.layer_passes += L;
  return w;
}

void Scheduler::Update(const SchedulerOutput& output) {
  for (const PrefillSlice& p : output.prefills) {
    auto it = entries_.find(p.id);
    if (it == entries_.end()) continue;  // removed meanwhile
    Entry& e = it->second;
    if (p.token_end < p.num_tokens) {  // a chunk short of the layer's end
      e.tokens_done = p.token_end;
      continue;
    }
    e.tokens_done = e.prefix;
    e.layers_done = p.layer_end;
    if (p.layer_end == config_.num_layers) {
      e.phase = Phase::kDecoding;
      ProduceOrReplay(e);
    }
  }
  for (RequestId id : output.decodes) {
    auto it = entries_.find(id);
    if (it != entries_.end()) ProduceOrReplay(it->second);
  }
}

}  // namespace restkv::scheduler
