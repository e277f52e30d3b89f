#include "scheduler/scheduler.h"

#include <algorithm>

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

int32_t Scheduler::SliceLayers(const Entry& e, bool first_prefill, int64_t* budget) const {
  const int64_t n = PrefillTokens(e);
  const int32_t remaining = config_.num_layers - e.layers_done;
  int32_t layers = static_cast<int32_t>(std::min<int64_t>(remaining, std::max<int64_t>(0, *budget) / n));
  if (layers == 0 && first_prefill) layers = 1;
  *budget -= layers * n;
  return layers;
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
  // The prefill rebuilds the prompt and yields the first output token again;
  // the other num_output - 1 are fed back by decodes; all of them are known.
  e.replay = e.request.replay_output_on_recompute ? e.num_output : 0;
  waiting_.insert(KeyOf(e));
  out.preempted.push_back(e.request.id);
  ++num_preemptions_;
}

SchedulerOutput Scheduler::Schedule() {
  SchedulerOutput out;
  const int32_t L = config_.num_layers;
  int64_t budget = static_cast<int64_t>(config_.max_num_batched_tokens) * L;

  // 1. Decodes, highest priority first; victims come from the tail.
  std::vector<OrderKey> order(running_.begin(), running_.end());
  for (size_t i = 0; i < order.size(); ++i) {
    if (running_.count(order[i]) == 0) continue;  // preempted below
    Entry& e = entries_.at(std::get<2>(order[i]));
    if (e.phase != Phase::kDecoding) continue;
    if (budget < L) break;
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
    budget -= L;
  }

  // 2. Prefills already under way, then 3. admissions from the waiting queue.
  for (const OrderKey& key : std::vector<OrderKey>(running_.begin(), running_.end())) {
    Entry& e = entries_.at(std::get<2>(key));
    if (e.phase != Phase::kPrefilling) continue;
    const int32_t layers = SliceLayers(e, out.prefills.empty(), &budget);
    if (layers == 0) break;
    RESTKV_CHECK(kv_.CoversPrefill(e.request.id, PrefillTokens(e), e.layers_done, e.layers_done + layers))
        << "reserved pages of request " << e.request.id << " were not there";
    out.prefills.push_back({e.request.id, PrefillTokens(e), e.layers_done, e.layers_done + layers});
  }
  while (!waiting_.empty() && static_cast<int32_t>(running_.size()) < config_.max_num_seqs) {
    Entry& e = entries_.at(std::get<2>(*waiting_.begin()));
    // A request preempted this step waits for the next: re-admitting it at
    // once would recompute it only to preempt it again.
    if (std::find(out.preempted.begin(), out.preempted.end(), e.request.id) != out.preempted.end()) {
      break;
    }
    const int32_t peak = kv_.PrefillPeakPages(e.request.id, PrefillTokens(e));
    if (peak > kv_.NumFreePages() - ReservedPages()) break;
    const int32_t layers = SliceLayers(e, out.prefills.empty(), &budget);
    if (layers == 0) break;
    waiting_.erase(waiting_.begin());
    e.phase = Phase::kPrefilling;
    running_.insert(KeyOf(e));
    RESTKV_CHECK(kv_.CoversPrefill(e.request.id, PrefillTokens(e), 0, layers))
        << "admitted request " << e.request.id << " could not allocate";
    out.prefills.push_back({e.request.id, PrefillTokens(e), 0, layers});
  }
  if (running_.empty() && !waiting_.empty()) {
    // Nothing holds a page, yet the head was not admitted: it never will be.
    out.unschedulable.push_back(std::get<2>(*waiting_.begin()));
  }
  out.token_layers = static_cast<int64_t>(out.decodes.size()) * L;
  for (const PrefillSlice& p : out.prefills) {
    out.token_layers += static_cast<int64_t>(p.num_tokens) * (p.layer_end - p.layer_begin);
  }
  return out;
}

void Scheduler::Update(const SchedulerOutput& output) {
  for (const PrefillSlice& p : output.prefills) {
    auto it = entries_.find(p.id);
    if (it == entries_.end()) continue;  // removed meanwhile
    Entry& e = it->second;
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
