#include "engine/engine.h"

#include <chrono>
#include <random>

#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "engine/capacity_error.h"
#include "engine/kv/kv_layer_hook.h"
#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/sampling/logprobs.h"
#include "engine/sampling/sampler.h"
#include "engine/sampling/stop_matcher.h"

namespace restkv::engine {
namespace {

using Clock = std::chrono::steady_clock;

double MsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// An evicting policy's cache depends on which tokens were prefilled together,
// so its recompute rebuilds the prompt and replays the output (scheduler.h).
bool ReplaysOutput(const KvPolicyConfig& policy) {
  return policy.kind != KvPolicyKind::kFull && policy.budget > 0;
}

}  // namespace

struct Engine::Active {
  RequestHandle id = 0;
  EngineRequest request;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<IncrementalDetokenizer> detok;
  std::unique_ptr<StopMatcher> stops;
  std::vector<int32_t> tokens;   // prompt, then every generated token
  int32_t num_output = 0;
  int32_t max_new = 0;
  std::unique_ptr<kernels::Buffer> hidden;  // [n][D] between prefill slices
  EvictionReport eviction;                  // of the current prefill attempt
  RequestSummary summary;
  Clock::time_point submitted;
  bool scheduled = false;
  bool prompt_logprobs_pending = false;  // requested and not yet reported
  std::shared_ptr<std::atomic<bool>> cancelled;  // Engine::cancel_flags_
};

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(Model& model, const EngineOptions& options) {
  const ModelConfig& c = model.config();
  if (options.max_num_seqs < 1 || options.max_num_batched_tokens < 1 || options.max_queue < 1) {
    return absl::InvalidArgumentError(
        "max_num_seqs, max_num_batched_tokens and max_queue must be at least 1");
  }
  if (options.max_model_len < 0 || options.max_model_len > c.context_length) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "max_model_len %d is outside [1, %d] (the model's context length)", options.max_model_len,
        c.context_length));
  }
  const KvPageShape shape{c.num_kv_heads, c.head_dim, model.forward().block_size()};
  const int64_t pages = options.kv_cache_bytes / shape.page_bytes();
  if (pages < c.num_layers) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "a KV cache of %d bytes holds %d pages of %d bytes; one token needs %d", options.kv_cache_bytes,
        pages, shape.page_bytes(), c.num_layers));
  }
  RESTKV_ASSIGN_OR_RETURN(auto pool, BlockPool::Create(model.backend(), shape,
                                                       static_cast<int32_t>(std::min<int64_t>(pages, 1 << 30))));
  return std::unique_ptr<Engine>(new Engine(model, options, std::move(pool)));
}

Engine::Engine(Model& model, const EngineOptions& options, std::unique_ptr<BlockPool> pool)
    : model_(model),
      options_(options),
      max_model_len_(options.max_model_len > 0 ? options.max_model_len
                                               : model.config().context_length),
      pool_(std::move(pool)),
      kv_(*pool_, model.config().num_layers),
      evictor_(model.config(), model.weights(), model.backend()),
      scheduler_({model.config().num_layers, options.max_num_seqs, options.max_num_batched_tokens},
                 kv_) {
  local_stats_.kv_pages_total = pool_->num_pages();
  stats_ = local_stats_;
  thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() { Shutdown(0); }

absl::StatusOr<RequestHandle> Engine::Submit(EngineRequest request) {
  const ModelConfig& c = model_.config();
  if (request.sink == nullptr) return absl::InvalidArgumentError("request has no sink");
  const int32_t n = static_cast<int32_t>(request.prompt_tokens.size());
  if (n == 0) return absl::InvalidArgumentError("the prompt is empty");
  for (int32_t t : request.prompt_tokens) {
    if (t < 0 || t >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("token id %d is outside the vocabulary [0, %d)", t, c.vocab_size));
    }
  }
  if (n >= max_model_len_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the prompt has %d tokens but the maximum context length is %d tokens", n, max_model_len_));
  }
  if (static_cast<int64_t>(n) + request.params.max_tokens > max_model_len_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the maximum context length is %d tokens, but %d were requested (%d in the prompt, %d "
        "to generate)",
        max_model_len_, static_cast<int64_t>(n) + request.params.max_tokens, n,
        request.params.max_tokens));
  }
  RESTKV_RETURN_IF_ERROR(request.params.Validate(c.vocab_size));
  RESTKV_RETURN_IF_ERROR(request.kv_policy.Validate());
  if (request.prompt_logprobs >= 0) {
    const int64_t logits_bytes = static_cast<int64_t>(n) * c.vocab_size * sizeof(float);
    if (request.prompt_logprobs > kMaxLogprobs) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "prompt logprobs: at most %d alternatives, got %d", kMaxLogprobs, request.prompt_logprobs));
    }
    if (logits_bytes > kMaxPromptLogitsBytes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "prompt logprobs for %d prompt tokens need %d MiB of logits; the limit is %d MiB "
          "(at most %d tokens with this vocabulary)",
          n, logits_bytes >> 20, kMaxPromptLogitsBytes >> 20,
          kMaxPromptLogitsBytes / (static_cast<int64_t>(c.vocab_size) * sizeof(float))));
    }
  }
  // The most it can ever hold: its prefill peak, its full length after
  // decoding, or the prefill peak of its recompute after preemption (of
  // prompt + output, or of the prompt alone when it replays its output).
  const KvPageMath& math = kv_.math();
  const int32_t total = n + request.params.max_tokens;
  const int32_t recompute = ReplaysOutput(request.kv_policy) ? n : total;
  const int64_t need = std::max({math.PrefillPeakPages(request.kv_policy, recompute),
                                 math.PagesAfterDecode(request.kv_policy, n, request.params.max_tokens)});
  if (need > pool_->num_pages()) {
    return KvCapacityError(absl::StrFormat(
        "the request needs up to %d KV pages (%d prompt + %d generated tokens with kv_policy %s, "
        "kv_budget %d) but the whole KV cache has %d pages of %d tokens",
        need, n, request.params.max_tokens, KvPolicyName(request.kv_policy.kind),
        request.kv_policy.budget, pool_->num_pages(), math.block_size));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!accepting_) return absl::UnavailableError("the server is shutting down");
  if (queued_ >= options_.max_queue) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("the request queue is full (%d requests)", options_.max_queue));
  }
  const RequestHandle id = next_handle_++;
  ++queued_;
  cancel_flags_.emplace(id, std::make_shared<std::atomic<bool>>(false));
  inbox_.emplace_back(id, std::move(request));
  cv_.notify_all();
  return id;
}

void Engine::Cancel(RequestHandle handle) {
  std::lock_guard<std::mutex> lock(mu_);
  auto flag = cancel_flags_.find(handle);
  if (flag != cancel_flags_.end()) flag->second->store(true, std::memory_order_relaxed);
  cancels_.push_back(handle);
  cv_.notify_all();
}

void Engine::Shutdown(int64_t drain_ms) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    accepting_ = false;
    cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(0, drain_ms)),
                 [this] { return queued_ == 0; });
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

EngineStats Engine::GetStats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void Engine::Loop() {
  // True when the last step could run nothing: only a submission or a cancel
  // can change that, so the thread sleeps until one arrives.
  bool stalled = false;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return stop_ || !inbox_.empty() || !cancels_.empty() ||
               (scheduler_.has_work() && !stalled);
      });
      if (stop_) break;
    }
    DrainInbox();
    stalled = scheduler_.has_work() && !Step();
    PublishStats();
  }
  // Shutting down: everything still here is cancelled.
  DrainInbox();
  std::vector<RequestHandle> left;
  for (const auto& [id, a] : active_) left.push_back(id);
  for (RequestHandle id : left) Finish(id, FinishReason::kCancelled);
  PublishStats();
}

void Engine::DrainInbox() {
  std::deque<std::pair<RequestHandle, EngineRequest>> inbox;
  std::vector<RequestHandle> cancels;
  std::vector<std::shared_ptr<std::atomic<bool>>> flags;
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox.swap(inbox_);
    cancels.swap(cancels_);
    for (const auto& [id, request] : inbox) flags.push_back(cancel_flags_.at(id));
  }
  for (size_t i = 0; i < inbox.size(); ++i) {
    const RequestHandle id = inbox[i].first;
    EngineRequest& request = inbox[i].second;
    auto a = std::make_unique<Active>();
    a->id = id;
    a->cancelled = std::move(flags[i]);
    a->submitted = Clock::now();
    const SamplingParams& p = request.params;
    const uint64_t seed = p.seed.has_value() ? *p.seed : std::random_device{}();
    a->sampler = std::make_unique<Sampler>(p, seed);
    // Completions continue the prompt, so their first token keeps its space.
    a->detok = std::make_unique<IncrementalDetokenizer>(
        model_.tokenizer(), IncrementalDetokenizer::StripLeadingSpace::kKeep);
    a->stops = std::make_unique<StopMatcher>(p.stop);
    a->tokens = request.prompt_tokens;
    a->max_new = p.max_tokens;
    a->summary.prompt_tokens = static_cast<int32_t>(request.prompt_tokens.size());
    a->request = std::move(request);
    a->prompt_logprobs_pending = a->request.prompt_logprobs >= 0;
    kv_.SetPolicy(id, a->request.kv_policy);
    scheduler_.Add({id, a->request.priority, a->summary.prompt_tokens,
                    ReplaysOutput(a->request.kv_policy)});
    local_stats_.prompt_tokens_total += a->summary.prompt_tokens;
    active_.emplace(id, std::move(a));
  }
  for (RequestHandle id : cancels) {
    if (active_.count(id)) Finish(id, FinishReason::kCancelled);
  }
}

void Engine::Finish(RequestHandle id, FinishReason reason, absl::Status error) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Active& a = *it->second;
  scheduler_.Remove(id);  // frees the KV pages
  a.summary.reason = reason;
  a.summary.error = std::move(error);
  a.summary.completion_tokens = a.num_output;
  a.summary.e2e_ms = MsBetween(a.submitted, Clock::now());
  // Published first, so a client that has seen its response complete reads
  // stats (and /metrics) that already count it.
  PublishStats();
  a.request.sink->OnFinish(a.summary);
  active_.erase(it);
  std::lock_guard<std::mutex> lock(mu_);
  cancel_flags_.erase(id);
  --queued_;
  cv_.notify_all();
}

bool Engine::Emit(Active& a, const float* logits) {
  const int32_t vocab = model_.config().vocab_size;
  const SamplingParams& p = a.request.params;
  std::vector<float> row(logits, logits + vocab);
  const int32_t prompt_len = a.summary.prompt_tokens;
  const int32_t next = a.sampler->Sample(absl::MakeSpan(row),
                                         absl::MakeConstSpan(a.tokens.data(), prompt_len));
  if (a.num_output == 0) a.summary.ttft_ms = MsBetween(a.submitted, Clock::now());
  TokenDelta delta;
  const bool stop_id = std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), next) !=
                       p.stop_token_ids.end();
  if ((!p.ignore_eos && model_.tokenizer().IsEndOfGeneration(next)) || stop_id) {
    StopMatcher::Result r = a.stops->Push(a.detok->Flush());
    delta.text = r.text + (r.stopped ? "" : a.stops->Flush());
    if (!delta.text.empty()) a.request.sink->OnTokens(delta);
    Finish(a.id, FinishReason::kStop);
    return true;
  }
  a.sampler->Accept(next);
  a.tokens.push_back(next);
  ++a.num_output;
  ++local_stats_.generation_tokens_total;
  delta.token_ids.push_back(next);
  if (p.logprobs >= 0) delta.logprobs.push_back(ComputeLogprobs({logits, static_cast<size_t>(vocab)}, next, p.logprobs));
  StopMatcher::Result r = a.stops->Push(a.detok->Push(next));
  delta.text = std::move(r.text);
  bool done = false;
  FinishReason reason = FinishReason::kStop;
  if (r.stopped) {
    a.summary.stop_string = r.matched;
    done = true;
  } else if (a.num_output >= a.max_new || static_cast<int32_t>(a.tokens.size()) >= max_model_len_) {
    StopMatcher::Result tail = a.stops->Push(a.detok->Flush());
    delta.text += tail.text;
    if (tail.stopped) {
      a.summary.stop_string = tail.matched;
    } else {
      delta.text += a.stops->Flush();
      reason = FinishReason::kLength;
    }
    done = true;
  }
  a.request.sink->OnTokens(delta);
  if (done) Finish(a.id, reason);
  return done;
}

bool Engine::Step() {
  const ModelConfig& c = model_.config();
  const int32_t L = c.num_layers;
  scheduler::SchedulerOutput plan = scheduler_.Schedule();
  ++local_stats_.steps;
  for (scheduler::RequestId id : plan.preempted) {
    Active& a = *active_.at(id);
    a.hidden.reset();
    ++a.summary.num_preemptions;
  }
  local_stats_.num_preemptions = scheduler_.num_preemptions();
  for (scheduler::RequestId id : plan.unschedulable) {
    const Active& a = *active_.at(id);
    const int32_t tokens = scheduler_.NumCachedTokens(id);  // its prefill length
    Finish(id, FinishReason::kError,
           KvCapacityError(absl::StrFormat(
               "the request needs %d KV pages to prefill %d tokens (kv_policy %s, kv_budget %d) "
               "but the KV cache has %d pages in all",
               kv_.PrefillPeakPages(id, tokens), tokens, KvPolicyName(a.request.kv_policy.kind),
               a.request.kv_policy.budget, pool_->num_pages())));
  }
  const auto now = Clock::now();

  // Work that runs all layers shares one forward pass; prefill slices of a
  // layer range run alone (each has its own hidden-state buffer).
  // A decode feeds the token at `position` (the newest one, or a known one
  // being replayed after preemption); a step samples only when its input
  // ends at the newest token.
  struct Work {
    Active* active;
    int32_t num_tokens;
    int32_t layer_begin, layer_end;
    bool decode;
    int32_t position;
    [[nodiscard]] bool samples() const {
      return position + num_tokens == static_cast<int32_t>(active->tokens.size());
    }
  };
  std::vector<Work> full, partial;
  for (scheduler::RequestId id : plan.decodes) {
    full.push_back({active_.at(id).get(), 1, 0, L, true, scheduler_.NumCachedTokens(id)});
  }
  for (const scheduler::PrefillSlice& s : plan.prefills) {
    Work w{active_.at(s.id).get(), s.num_tokens, s.layer_begin, s.layer_end, false, 0};
    (s.layer_begin == 0 && s.layer_end == L ? full : partial).push_back(w);
  }
  for (const Work& w : full) {
    if (!w.active->scheduled) {
      w.active->scheduled = true;
      w.active->summary.queue_ms = MsBetween(w.active->submitted, now);
    }
  }
  for (const Work& w : partial) {
    if (!w.active->scheduled) {
      w.active->scheduled = true;
      w.active->summary.queue_ms = MsBetween(w.active->submitted, now);
    }
  }

  std::deque<KvLayerHook> hooks;  // stable addresses for this step's inputs
  auto input_for = [&](const Work& w) {
    Active& a = *w.active;
    SequenceKv& kv = kv_.Get(a.id);
    SequenceInput in;
    if (w.decode) {
      in.tokens = absl::MakeConstSpan(a.tokens.data() + w.position, 1);
      in.first_position = w.position;
    } else {
      in.tokens = absl::MakeConstSpan(a.tokens.data(), w.num_tokens);
      in.first_position = 0;
    }
    in.cached_len = kv.cached_len();
    in.pages = kv.page_ptrs();
    in.logits = !w.decode && w.layer_end == L && a.prompt_logprobs_pending ? LogitsMode::kAll
                                                                           : LogitsMode::kLast;
    in.layer_begin = w.layer_begin;
    in.layer_end = w.layer_end;
    in.hidden = a.hidden ? a.hidden->floats() : nullptr;
    if (w.decode) {
      hooks.emplace_back(kv);
    } else {
      if (w.layer_begin == 0) a.eviction = {};
      hooks.emplace_back(kv, a.request.kv_policy, evictor_, &a.eviction);
    }
    in.hook = &hooks.back();
    return in;
  };
  auto fail = [&](const std::vector<Work>& works, const absl::Status& s) {
    for (const Work& w : works) Finish(w.active->id, FinishReason::kError, s);
  };

  std::vector<float> logits;
  std::vector<RequestHandle> to_emit;
  std::vector<std::vector<float>> emit_logits;
  // Rows [row, row + rows) of `logits` belong to one sequence (one row per
  // prompt token when `all`, for prompt logprobs): reports those, and queues
  // the last row for sampling.
  auto collect = [&](Active& a, int64_t row, int64_t rows, bool all) {
    const int64_t V = c.vocab_size;
    if (all) {
      std::vector<LogprobResult> prompt_lp;
      prompt_lp.reserve(rows - 1);
      for (int64_t i = 0; i + 1 < rows; ++i) {
        prompt_lp.push_back(ComputeLogprobs(
            absl::MakeConstSpan(logits.data() + (row + i) * V, V), a.tokens[i + 1],
            a.request.prompt_logprobs));
      }
      a.prompt_logprobs_pending = false;
      a.request.sink->OnPromptLogprobs(prompt_lp);
    }
    to_emit.push_back(a.id);
    emit_logits.emplace_back(logits.begin() + (row + rows - 1) * V, logits.begin() + (row + rows) * V);
  };
  if (!full.empty()) {
    std::vector<SequenceInput> inputs;
    for (const Work& w : full) inputs.push_back(input_for(w));
    if (absl::Status s = model_.forward().Forward(inputs, &logits); !s.ok()) {
      fail(full, s);
    } else {
      int64_t row = 0;
      for (size_t i = 0; i < full.size(); ++i) {
        if (!full[i].decode) FinishPrefill(*full[i].active, full[i].num_tokens);
        const bool all = inputs[i].logits == LogitsMode::kAll;
        const int64_t rows = all ? full[i].num_tokens : 1;
        if (full[i].samples()) collect(*full[i].active, row, rows, all);
        row += rows;
      }
    }
  }
  for (const Work& w : partial) {
    Active& a = *w.active;
    if (!a.hidden) {
      auto buf = model_.backend().Allocate(static_cast<size_t>(w.num_tokens) * c.hidden_size * sizeof(float));
      if (!buf.ok()) {
        fail({w}, buf.status());
        continue;
      }
      a.hidden = std::move(*buf);
    }
    SequenceInput in = input_for(w);
    hooks.back().set_cancel_flag(a.cancelled.get());
    if (absl::Status s = model_.forward().Forward({&in, 1}, &logits); !s.ok()) {
      if (absl::IsCancelled(s)) {
        Finish(a.id, FinishReason::kCancelled);  // frees its pages
      } else {
        fail({w}, s);
      }
      continue;
    }
    if (w.layer_end == L) {
      FinishPrefill(a, w.num_tokens);
      a.hidden.reset();
      const bool all = in.logits == LogitsMode::kAll;
      if (w.samples()) collect(a, 0, all ? w.num_tokens : 1, all);
    }
  }
  scheduler_.Update(plan);
  for (size_t i = 0; i < to_emit.size(); ++i) {
    auto it = active_.find(to_emit[i]);
    if (it != active_.end()) Emit(*it->second, emit_logits[i].data());
  }
  return !plan.empty() || !plan.unschedulable.empty();
}

void Engine::FinishPrefill(Active& a, int32_t num_tokens) {
  const int32_t L = model_.config().num_layers;
  if (a.eviction.tokens_kept + a.eviction.tokens_evicted == 0) {
    a.summary.kv_tokens_kept = num_tokens;  // nothing evicted
    a.summary.kv_tokens_evicted = 0;
  } else {
    a.summary.kv_tokens_kept = static_cast<int32_t>(a.eviction.tokens_kept / L);
    a.summary.kv_tokens_evicted = static_cast<int32_t>(a.eviction.tokens_evicted / L);
  }
  local_stats_.kv_pages_released_by_eviction += a.eviction.pages_released;
  local_stats_.kv_tokens_evicted_total += a.eviction.tokens_evicted;
}

void Engine::PublishStats() {
  local_stats_.num_running = scheduler_.num_running();
  local_stats_.num_waiting = scheduler_.num_waiting();
  local_stats_.kv_pages_used = pool_->num_used();
  local_stats_.kv_pages_high_water = pool_->high_water();
  std::lock_guard<std::mutex> lock(mu_);
  stats_ = local_stats_;
  stats_.num_waiting += static_cast<int32_t>(inbox_.size());
}

}  // namespace restkv::engine
