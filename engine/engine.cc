#include "engine/engine.h"

#include <chrono>
#include <limits>
#include <random>

#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "engine/capacity_error.h"
#include "engine/kv/kv_layer_hook.h"
#include "engine/sampling/logprobs.h"
#include "engine/sampling/output_processor.h"
#include "engine/sampling/sampler.h"
#include "engine/step_budget.h"

namespace restkv::engine {
namespace {

scheduler::SchedulerConfig SchedulerConfigFor(const ModelConfig& c, const EngineOptions& o) {
  scheduler::SchedulerConfig config;
  config.num_layers = c.num_layers;
  config.max_num_seqs = o.max_num_seqs;
  config.max_num_batched_tokens = o.max_num_batched_tokens;
  config.max_step_ms = o.max_step_ms;
  config.lone_prefill_step_ms = o.max_step_ms * kLonePrefillStepFactor;
  return config;
}

scheduler::StepCostModelOptions StepCostModelOptionsFor(Model& model, const EngineOptions& o) {
  scheduler::StepCostModelOptions options;
  options.prior = o.step_cost_prior.is_zero()
                      ? PriorStepCost(model.backend().name(), model.config())
                      : o.step_cost_prior;
  return options;
}

// An evicting policy's cache depends on which tokens were prefilled together,
// so its recompute rebuilds the prompt and replays the output (scheduler.h).
bool ReplaysOutput(const KvPolicyConfig& policy) {
  return policy.kind != KvPolicyKind::kFull && policy.budget > 0;
}

// Its prefill may split a layer by tokens (scheduler.h, NewRequest): the
// policy scores with a window the last chunk holds, not with every query,
// and no prompt logprobs are wanted (they need every row's logits at once).
bool Chunkable(const EngineRequest& r) {
  const KvPolicyConfig& policy = r.kv_policy;
  return r.prompt_logprobs < 0 && !NeedsH2oScores(policy) &&
         ScoringWindow(policy, std::numeric_limits<int32_t>::max()) <=
             scheduler::kMinLastChunkTokens;
}

}  // namespace

// A request the engine holds, from DrainInbox until Finish: waiting,
// running or preempted.
struct Engine::RequestState {
  RequestHandle id = 0;
  EngineRequest request;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<OutputProcessor> output;  // text and the end-of-sequence decision
  std::vector<int32_t> tokens;              // prompt, then every generated token
  std::unique_ptr<kernels::Buffer> hidden;  // [n][D] between prefill slices
  EvictionReport eviction;                  // of the current prefill attempt
  RequestSummary summary;
  double submitted_ms = 0;
  bool scheduled = false;
  bool prompt_logprobs_pending = false;                 // requested and not yet reported
  std::shared_ptr<std::atomic<bool>> cancelled;         // Engine::cancel_flags_
  std::unique_ptr<structured::GrammarMatcher> matcher;  // structured output, if any
  structured::TokenBitmask mask;                        // scratch for the matcher
};

// One request's share of a step.
// A decode feeds the token at `position` (the newest one, or a known one
// being replayed after preemption); a step samples only when its input ends
// at the newest token.
struct Engine::Work {
  RequestState* request;
  int32_t num_tokens;
  int32_t layer_begin, layer_end;
  bool decode;
  int32_t position = 0;
  // A prefill's rows [token_begin, token_end) of its num_tokens: all of them,
  // or one chunk of a layer (PrefillSlice).
  int32_t token_begin = 0, token_end = 0;
  int32_t prefix_tokens = 0;  // rows [0, prefix_tokens) came from the prefix cache
  [[nodiscard]] bool ends_prefill(int32_t num_layers) const {
    return layer_end == num_layers && token_end == num_tokens;
  }
  [[nodiscard]] bool samples() const {
    return position + num_tokens == static_cast<int32_t>(request->tokens.size());
  }
};

// What the scheduler decided for this step, as work for the forward pass.
// Work that runs all layers shares one forward pass; prefill slices of a
// layer range run alone (each has its own hidden-state buffer).
struct Engine::StepPlan {
  scheduler::SchedulerOutput schedule;
  std::vector<Work> full, partial;
};

// A sequence whose step reached the last layer: the logits to sample from.
struct Engine::SampleRow {
  RequestHandle id;
  std::vector<float> logits;  // [V]
};

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(Model& model, const EngineOptions& options) {
  const ModelConfig& c = model.config();
  if (options.max_num_seqs < 1 || options.max_num_batched_tokens < 1 || options.max_queue < 1) {
    return absl::InvalidArgumentError(
        "max_num_seqs, max_num_batched_tokens and max_queue must be at least 1");
  }
  const scheduler::StepCost& p = options.step_cost_prior;
  if (!(options.max_step_ms >= 0) ||
      (!p.is_zero() &&
       !(p.ms_per_layer_pass > 0 && p.ms_per_token_layer > 0 && p.ms_per_attention_pair > 0))) {
    return absl::InvalidArgumentError(
        "max_step_ms must be >= 0 and a step cost prior, if given, positive in every term");
  }
  if (options.max_model_len < 0 || options.max_model_len > c.context_length) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_model_len %d is outside [1, %d] (the model's context length)",
                        options.max_model_len, c.context_length));
  }
  const KvPageShape shape{c.num_kv_heads, c.head_dim, model.forward().block_size(),
                          model.forward().kv_dtype()};
  const int64_t pages = options.kv_cache_bytes / shape.page_bytes();
  if (pages < c.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a KV cache of %d bytes holds %d pages of %d bytes; one token needs %d",
                        options.kv_cache_bytes, pages, shape.page_bytes(), c.num_layers));
  }
  RESTKV_ASSIGN_OR_RETURN(
      auto pool, BlockPool::Create(model.backend(), shape,
                                   static_cast<int32_t>(std::min<int64_t>(pages, 1 << 30))));
  return std::unique_ptr<Engine>(new Engine(model, options, std::move(pool)));
}

Engine::Engine(Model& model, const EngineOptions& options, std::unique_ptr<BlockPool> pool)
    : model_(model),
      options_(options),
      max_model_len_(options.max_model_len > 0 ? options.max_model_len
                                               : model.config().context_length),
      pool_(std::move(pool)),
      kv_(*pool_, model.config().num_layers, options.enable_prefix_caching),
      evictor_(model.config(), model.weights(), model.backend()),
      scheduler_(SchedulerConfigFor(model.config(), options), kv_),
      clock_(options.clock != nullptr ? *options.clock : SteadyClock()),
      step_cost_(StepCostModelOptionsFor(model, options)),
      grammars_(std::make_unique<structured::GrammarCompiler>(
          structured::TokenVocabulary::FromTokenizer(model.tokenizer()))) {
  local_stats_.step_cost = step_cost_.cost();
  local_stats_.kv_pages_total = pool_->num_pages();
  local_stats_.kv_page_bytes = pool_->shape().page_bytes();
  stats_ = local_stats_;
  thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() { Shutdown(0); }

int64_t Engine::PagesNeeded(int32_t prompt_len, int32_t max_tokens,
                            const KvPolicyConfig& policy) const {
  // The most it can ever hold: its prefill peak, its full length after
  // decoding, or the prefill peak of its recompute after preemption (of
  // prompt + output, or of the prompt alone when it replays its output).
  const KvPageMath& math = kv_.math();
  const int32_t recompute = ReplaysOutput(policy) ? prompt_len : prompt_len + max_tokens;
  return std::max(math.PrefillPeakPages(policy, recompute),
                  math.PagesAfterDecode(policy, prompt_len, max_tokens));
}

int32_t Engine::MaxTokensThatFit(int32_t prompt_len, const KvPolicyConfig& policy) const {
  int32_t lo = 0, hi = std::max(0, max_model_len_ - prompt_len);
  if (PagesNeeded(prompt_len, 0, policy) > pool_->num_pages()) return 0;
  // PagesNeeded grows with max_tokens: the largest that fits, by bisection.
  while (lo < hi) {
    const int32_t mid = lo + (hi - lo + 1) / 2;
    if (PagesNeeded(prompt_len, mid, policy) <= pool_->num_pages()) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

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
  if (request.grammar != nullptr &&
      request.grammar->vocab().vocab_size() != grammars_->vocab().vocab_size()) {
    return absl::InvalidArgumentError("the grammar was compiled for another vocabulary");
  }
  if (request.prompt_logprobs >= 0) {
    const int64_t logits_bytes = static_cast<int64_t>(n) * c.vocab_size * sizeof(float);
    if (request.prompt_logprobs > kMaxLogprobs) {
      return absl::InvalidArgumentError(
          absl::StrFormat("prompt logprobs: at most %d alternatives, got %d", kMaxLogprobs,
                          request.prompt_logprobs));
    }
    if (logits_bytes > kMaxPromptLogitsBytes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "prompt logprobs for %d prompt tokens need %d MiB of logits; the limit is %d MiB "
          "(at most %d tokens with this vocabulary)",
          n, logits_bytes >> 20, kMaxPromptLogitsBytes >> 20,
          kMaxPromptLogitsBytes / (static_cast<int64_t>(c.vocab_size) * sizeof(float))));
    }
  }
  const KvPageMath& math = kv_.math();
  const int64_t need = PagesNeeded(n, request.params.max_tokens, request.kv_policy);
  if (need > pool_->num_pages()) {
    return KvCapacityError(absl::StrFormat(
        "the request needs up to %d KV pages (%d prompt + %d generated tokens with kv_policy %s, "
        "kv_budget %d) but the whole KV cache has %d pages of %d tokens",
        need, n, request.params.max_tokens, KvPolicyName(request.kv_policy.kind),
        request.kv_policy.budget, pool_->num_pages(), math.block_size));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!accepting_) return absl::UnavailableError("the server is shutting down");
  if (!stats_.backend_status.ok()) {
    return absl::UnavailableError(absl::StrFormat("the server cannot run requests: %s",
                                                  std::string(stats_.backend_status.message())));
  }
  if (num_unfinished_ >= options_.max_queue) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("the request queue is full (%d requests)", options_.max_queue));
  }
  const RequestHandle id = next_handle_++;
  ++num_unfinished_;
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
                 [this] { return num_unfinished_ == 0; });
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
        return stop_ || !inbox_.empty() || !cancels_.empty() || (scheduler_.has_work() && !stalled);
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
  for (const auto& [id, a] : requests_) left.push_back(id);
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
    auto a = std::make_unique<RequestState>();
    a->id = id;
    a->cancelled = std::move(flags[i]);
    a->submitted_ms = clock_.NowMs();
    const SamplingParams& p = request.params;
    const uint64_t seed = p.seed.has_value() ? *p.seed : std::random_device{}();
    a->sampler = std::make_unique<Sampler>(p, seed);
    a->tokens = request.prompt_tokens;
    a->summary.prompt_tokens = static_cast<int32_t>(request.prompt_tokens.size());
    a->output = std::make_unique<OutputProcessor>(model_.tokenizer(), p, a->summary.prompt_tokens,
                                                  max_model_len_);
    if (request.grammar != nullptr) {
      a->matcher = std::make_unique<structured::GrammarMatcher>(request.grammar, p.stop_token_ids);
    }
    a->request = std::move(request);
    a->prompt_logprobs_pending = a->request.prompt_logprobs >= 0;
    kv_.SetPolicy(id, a->request.kv_policy);
    // Prompt logprobs need every prompt row computed.
    kv_.SetTokens(id, &a->tokens, a->request.prompt_logprobs < 0);
    scheduler_.Add({id, a->request.priority, a->summary.prompt_tokens,
                    ReplaysOutput(a->request.kv_policy), Chunkable(a->request)});
    local_stats_.prompt_tokens_total += a->summary.prompt_tokens;
    requests_.emplace(id, std::move(a));
  }
  for (RequestHandle id : cancels) {
    if (requests_.count(id)) Finish(id, FinishReason::kCancelled);
  }
}

void Engine::Finish(RequestHandle id, FinishReason reason, absl::Status error) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  RequestState& a = *it->second;
  // What it computed stays cached for later requests (not after a failed
  // step: its pages may hold anything).
  if (reason != FinishReason::kError) kv_.CacheFullBlocks(id);
  scheduler_.Remove(id);  // frees the KV pages
  a.summary.reason = reason;
  a.summary.error = std::move(error);
  a.summary.completion_tokens = a.output->num_generated();
  a.summary.e2e_ms = clock_.NowMs() - a.submitted_ms;
  // Published first, so a client that has seen its response complete reads
  // stats (and /metrics) that already count it.
  PublishStats();
  a.request.sink->OnFinish(a.summary);
  requests_.erase(it);
  std::lock_guard<std::mutex> lock(mu_);
  cancel_flags_.erase(id);
  --num_unfinished_;
  cv_.notify_all();
}

bool Engine::SampleNext(RequestState& a, const float* logits) {
  const int32_t vocab = model_.config().vocab_size;
  const SamplingParams& p = a.request.params;
  std::vector<float> row(logits, logits + vocab);
  if (a.matcher != nullptr) {
    if (a.matcher->FillNextTokenMask(&a.mask) == 0) {
      Finish(a.id, FinishReason::kError,
             absl::InternalError("structured output: the grammar allows no token here"));
      return true;
    }
    structured::ApplyTokenMask(a.mask, grammars_->vocab().vocab_size(), absl::MakeSpan(row));
  }
  a.output->SuppressEnd(absl::MakeSpan(row));  // min_tokens
  const int32_t prompt_len = a.summary.prompt_tokens;
  const int32_t next =
      a.sampler->Sample(absl::MakeSpan(row), absl::MakeConstSpan(a.tokens.data(), prompt_len));
  if (a.output->num_output() == 0) a.summary.ttft_ms = clock_.NowMs() - a.submitted_ms;
  OutputProcessor::Update u = a.output->Push(next);
  TokenDelta delta;
  delta.text = std::move(u.text);
  if (u.accepted) {
    a.sampler->Accept(next);
    a.tokens.push_back(next);
    ++local_stats_.generation_tokens_total;
    delta.token_ids.push_back(next);
    if (a.matcher != nullptr) {
      RESTKV_CHECK(a.matcher->AcceptToken(next)) << "token " << next << " was masked out";
      if (a.matcher->TooAmbiguous()) {
        a.request.sink->OnTokens(delta);
        Finish(a.id, FinishReason::kError,
               absl::InvalidArgumentError(absl::StrFormat(
                   "structured output: the grammar is too ambiguous (more than %d parse stacks)",
                   structured::GrammarMatcher::kMaxStacks)));
        return true;
      }
      // Only an end token could follow: stop now rather than spend a step on it.
      if (!u.finished && a.matcher->IsTerminated()) {
        OutputProcessor::Update tail = a.output->End(FinishReason::kStop);
        delta.text += tail.text;
        u.finished = tail.finished;
        u.stop_string = std::move(tail.stop_string);
      } else if (u.finished == FinishReason::kLength && a.matcher->IsTerminated()) {
        u.finished = FinishReason::kStop;  // the last token allowed completed the output
      }
    }
    if (p.logprobs >= 0) {
      delta.logprobs.push_back(
          ComputeLogprobs({logits, static_cast<size_t>(vocab)}, next, p.logprobs));
    }
  }
  // An end-of-generation token adds no token, only the held-back text.
  if (u.accepted || !delta.text.empty()) a.request.sink->OnTokens(delta);
  if (!u.finished) return false;
  a.summary.stop_string = std::move(u.stop_string);
  a.summary.stop_token_id = u.stop_token_id;
  Finish(a.id, *u.finished);
  return true;
}

// NOTE(restkv): a step is plan -> run -> sample. The scheduler's plan becomes
// forward-pass work; the forward passes leave one logits row per sequence
// that reached the last layer; the scheduler learns what ran before any
// sequence is sampled, so a request that finishes while sampling is removed
// from a scheduler that is already up to date.
// The step is timed from plan to sample: what a decoding request waits
// between two tokens. Its measured time refits the step prices the next
// plans are made with.
bool Engine::Step() {
  const double start_ms = clock_.NowMs();
  StepPlan plan = PlanStep();
  std::vector<SampleRow> rows;
  RunFullBatch(plan.full, &rows);
  for (const Work& w : plan.partial) RunSlice(w, &rows);
  scheduler_.Update(plan.schedule);
  for (SampleRow& r : rows) {
    auto it = requests_.find(r.id);
    if (it != requests_.end()) SampleNext(*it->second, r.logits.data());
  }
  if (!plan.schedule.empty()) {
    StepRecord record;
    record.step_ms = clock_.NowMs() - start_ms;
    record.planned_ms = step_cost_.cost().Ms(plan.schedule.work);
    record.num_decode_tokens = static_cast<int32_t>(plan.schedule.decodes.size());
    record.prefill_token_layers = plan.schedule.prefill_token_layers;
    step_cost_.Observe(plan.schedule.work, record.step_ms);
    local_stats_.step_cost = step_cost_.cost();
    if (options_.on_step) options_.on_step(record);
  }
  return !plan.schedule.empty() || !plan.schedule.unschedulable.empty();
}

Engine::StepPlan Engine::PlanStep() {
  const int32_t L = model_.config().num_layers;
  StepPlan plan;
  plan.schedule = scheduler_.Schedule(step_cost_.cost());
  ++local_stats_.steps;
  for (scheduler::RequestId id : plan.schedule.preempted) {
    RequestState& a = *requests_.at(id);
    a.hidden.reset();
    ++a.summary.num_preemptions;
  }
  local_stats_.num_preemptions = scheduler_.num_preemptions();
  for (scheduler::RequestId id : plan.schedule.unschedulable) {
    const RequestState& a = *requests_.at(id);
    const int32_t tokens = scheduler_.NumCachedTokens(id);  // its prefill length
    Finish(id, FinishReason::kError,
           KvCapacityError(absl::StrFormat(
               "the request needs %d KV pages to prefill %d tokens (kv_policy %s, kv_budget %d) "
               "but the KV cache has %d pages in all",
               kv_.PrefillPeakPages(id, tokens), tokens, KvPolicyName(a.request.kv_policy.kind),
               a.request.kv_policy.budget, pool_->num_pages())));
  }
  for (scheduler::RequestId id : plan.schedule.decodes) {
    plan.full.push_back({requests_.at(id).get(), 1, 0, L, true, scheduler_.NumCachedTokens(id)});
  }
  for (const scheduler::PrefillSlice& s : plan.schedule.prefills) {
    Work w{requests_.at(s.id).get(), s.num_tokens, s.layer_begin, s.layer_end, false};
    w.token_begin = s.token_begin;
    w.token_end = s.token_end;
    w.prefix_tokens = s.prefix_tokens;
    (s.layer_begin == 0 && s.layer_end == L && !s.is_chunk() ? plan.full : plan.partial)
        .push_back(w);
  }
  const double now_ms = clock_.NowMs();
  for (const std::vector<Work>* works : {&plan.full, &plan.partial}) {
    for (const Work& w : *works) {
      if (w.request->scheduled) continue;
      w.request->scheduled = true;
      w.request->summary.queue_ms = now_ms - w.request->submitted_ms;
      w.request->summary.cached_tokens = kv_.prefix_tokens(w.request->id);
    }
  }
  return plan;
}

SequenceInput Engine::InputFor(const Work& w, std::deque<KvLayerHook>* hooks) {
  RequestState& a = *w.request;
  SequenceKv& kv = kv_.Get(a.id);
  SequenceInput in;
  if (w.decode) {
    in.tokens = absl::MakeConstSpan(a.tokens.data() + w.position, 1);
    in.first_position = w.position;
  } else {
    in.tokens = absl::MakeConstSpan(a.tokens.data() + w.token_begin, w.token_end - w.token_begin);
    in.first_position = w.token_begin;
  }
  in.cached_len = kv.cached_len();
  in.pages = kv.page_ptrs();
  in.head_len = kv.head_len();
  in.padding_end = kv.padding_end();
  const int32_t L = model_.config().num_layers;
  if (w.decode) {
    in.logits = LogitsMode::kLast;
  } else if (!w.ends_prefill(L)) {
    in.logits = LogitsMode::kNone;
  } else {
    in.logits = a.prompt_logprobs_pending ? LogitsMode::kAll : LogitsMode::kLast;
  }
  in.layer_begin = w.layer_begin;
  in.layer_end = w.layer_end;
  // A chunk reads and writes its own rows of the [n][D] hidden states.
  in.hidden = a.hidden ? a.hidden->floats() +
                             static_cast<int64_t>(w.token_begin) * model_.config().hidden_size
                       : nullptr;
  if (w.decode) {
    hooks->emplace_back(kv);
  } else {
    if (w.layer_begin == 0 && w.token_begin == w.prefix_tokens) a.eviction = {};
    hooks->emplace_back(kv, a.request.kv_policy, evictor_, &a.eviction);
    if (w.token_begin > 0 || w.token_end < w.num_tokens) {
      hooks->back().set_prompt_chunk(w.token_begin, w.num_tokens);
    }
    // An evicting prefill leaves its uncompressed blocks in the prefix cache.
    hooks->back().set_stager(kv_.StagerFor(a.id, w.num_tokens));
  }
  in.hook = &hooks->back();
  return in;
}

void Engine::CollectLogits(RequestState& a, const std::vector<float>& logits, int64_t row,
                           int64_t rows, bool all, std::vector<SampleRow>* out) {
  const int64_t V = model_.config().vocab_size;
  if (all) {
    // One row per prompt token: the prompt's logprobs, reported once.
    std::vector<LogprobResult> prompt_lp;
    prompt_lp.reserve(rows - 1);
    for (int64_t i = 0; i + 1 < rows; ++i) {
      prompt_lp.push_back(ComputeLogprobs(absl::MakeConstSpan(logits.data() + (row + i) * V, V),
                                          a.tokens[i + 1], a.request.prompt_logprobs));
    }
    a.prompt_logprobs_pending = false;
    a.request.sink->OnPromptLogprobs(prompt_lp);
  }
  out->push_back({a.id, std::vector<float>(logits.begin() + (row + rows - 1) * V,
                                           logits.begin() + (row + rows) * V)});
}

void Engine::RunFullBatch(const std::vector<Work>& works, std::vector<SampleRow>* rows) {
  if (works.empty()) return;
  std::deque<KvLayerHook> hooks;  // stable addresses for the inputs
  std::vector<SequenceInput> inputs;
  for (const Work& w : works) inputs.push_back(InputFor(w, &hooks));
  std::vector<float> logits;
  if (absl::Status s = model_.forward().Forward(inputs, &logits); !s.ok()) {
    for (const Work& w : works) Finish(w.request->id, FinishReason::kError, s);
    return;
  }
  int64_t row = 0;
  for (size_t i = 0; i < works.size(); ++i) {
    if (!works[i].decode) {
      RecordPrefillEviction(*works[i].request, works[i].num_tokens);
      kv_.CacheFullBlocks(works[i].request->id);  // the next requests may share its prompt
    }
    const bool all = inputs[i].logits == LogitsMode::kAll;
    const int64_t n = all ? works[i].num_tokens : 1;
    if (works[i].samples()) CollectLogits(*works[i].request, logits, row, n, all, rows);
    row += n;
  }
}

void Engine::RunSlice(const Work& w, std::vector<SampleRow>* rows) {
  const ModelConfig& c = model_.config();
  RequestState& a = *w.request;
  if (!a.hidden) {
    auto buf = model_.backend().Allocate(static_cast<size_t>(w.num_tokens) * c.hidden_size *
                                         sizeof(float));
    if (!buf.ok()) {
      Finish(a.id, FinishReason::kError, buf.status());
      return;
    }
    a.hidden = std::move(*buf);
  }
  std::deque<KvLayerHook> hooks;
  SequenceInput in = InputFor(w, &hooks);
  // A slice that runs alone stops at the next layer boundary once cancelled
  // (a hook error would fail every sequence of a batched pass, so batched
  // work stops at the end of its step).
  hooks.back().set_cancel_flag(a.cancelled.get());
  std::vector<float> logits;
  if (absl::Status s = model_.forward().Forward({&in, 1}, &logits); !s.ok()) {
    if (absl::IsCancelled(s)) {
      Finish(a.id, FinishReason::kCancelled);  // frees its pages
    } else {
      Finish(a.id, FinishReason::kError, s);
    }
    return;
  }
  if (!w.ends_prefill(c.num_layers)) return;
  RecordPrefillEviction(a, w.num_tokens);
  kv_.CacheFullBlocks(a.id);
  a.hidden.reset();
  const bool all = in.logits == LogitsMode::kAll;
  if (w.samples()) CollectLogits(a, logits, 0, all ? w.num_tokens : 1, all, rows);
}

void Engine::RecordPrefillEviction(RequestState& a, int32_t num_tokens) {
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
  local_stats_.backend_status = model_.backend().status();
  local_stats_.num_running = scheduler_.num_running();
  local_stats_.num_waiting = scheduler_.num_waiting();
  local_stats_.kv_pages_used = pool_->num_used();
  local_stats_.kv_pages_high_water = pool_->high_water();
  local_stats_.prefix_cache_query_tokens = kv_.prefix_counters().query_tokens;
  local_stats_.prefix_cache_hit_tokens = kv_.prefix_counters().hit_tokens;
  local_stats_.prefix_cache_blocks = pool_->num_cached_blocks();
  std::lock_guard<std::mutex> lock(mu_);
  stats_ = local_stats_;
  stats_.num_waiting += static_cast<int32_t>(inbox_.size());
}

}  // namespace restkv::engine
