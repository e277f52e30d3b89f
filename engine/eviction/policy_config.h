// KV eviction policy registry, knobs and budget rule (spec §1, §3, §5).
//
// A policy is a scorer (token_selection.h: SelectTokens) plus the budget rule here:
// KeptTokensForLayer says how many tokens each layer keeps per KV head, and is
// the only number page arithmetic (admission, compaction) may use — PyramidKV
// layers keep more or fewer than the nominal budget.
//
// Legend: N = prompt tokens, B = budget (tokens kept per layer per KV head,
// window included), w = observation window, L = layers.
//
// Eviction happens iff the policy is not `full`, B > 0 and N > B (§1: a prompt
// of at most B tokens is kept whole). Everything here is a pure function of
// its arguments.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/eviction/lacache.h"
#include "engine/eviction/pooling.h"
#include "engine/eviction/scores.h"
#include "engine/eviction/select.h"

namespace restkv::engine {

// How a layer's candidate budget is shared between its KV heads.
enum class AdaptiveBudget { kNone, kAdaKv };

enum class KvPolicyKind {
  kFull,
  kStreamingLlm,
  kH2o,
  kTova,
  kSnapKv,
  kPyramidKv,
  kRestKv,
  kLaCache,
};

// "full", "streamingllm", "h2o", "tova", "snapkv", "pyramidkv", "restkv", "lacache"
// (ASCII case-insensitive). InvalidArgument listing the names otherwise.
absl::StatusOr<KvPolicyKind> ParseKvPolicy(std::string_view name);
std::string_view KvPolicyName(KvPolicyKind kind);

// Every knob of the design spec (docs/eviction.md maps its sections) with the release scripts'
// defaults (§2.6). Knobs a policy does not use are ignored by it.
struct KvPolicyConfig {
  using Temporal = TemporalMode;
  using Metric = MetricMode;
  using Pooling = PoolingMode;

  KvPolicyKind kind = KvPolicyKind::kFull;
  int32_t budget = 0;   // B; 0 = no eviction
  int32_t window = 32;  // w: last prompt tokens used as queries and always kept
  // ReST-KV indicator (§2.2, §2.3).
  float alpha = 0.3f;                  // EMA smoothing factor
  Temporal temporal = Temporal::kEma;  // kEma | kMean | kLast | kInvEma
  Metric metric = Metric::kAfter;
  bool use_wo = true;     // project distances through W_O^h (needs the factor)
  bool use_norm = false;  // metric kBefore only
  float tau = 1.0f;       // distance exponent, metric kAfter only
  // Smoothing (§2.4). kDefault = adaptive for restkv, avgpool for
  // snapkv/pyramidkv; h2o, tova and streamingllm never pool.
  Pooling pooling = Pooling::kDefault;
  float beta = 2000.0f;     // AWS scale: drift tokens per widening step
  int32_t kernel_size = 5;  // k_min; 21 in the RULER/InfiniteBench scripts
  GqaReduce gqa_reduce = GqaReduce::kMean;
  int32_t sink_tokens = 4;  // StreamingLLM and LaCache
  // LaCache ladder (lacache.h): layers one ladder step spans, and the overlap
  // of consecutive steps; the recent band is `window`.
  int32_t span = 16;
  int32_t overlap = 0;
  bool use_pyramid = false;  // restkv with the PyramidKV layer schedule
  // Head-wise budgets inside a layer (adakv.h) for the scoring policies
  // (h2o, snapkv, pyramidkv, restkv): each KV head keeps its own count, at
  // most adakv_cap times the layer's uniform candidate count.
  AdaptiveBudget adaptive = AdaptiveBudget::kNone;
  float adakv_cap = 2.0f;
  bool adakv_normalize = true;

  // OK, or InvalidArgument naming the offending knob: budget < 0; window < 1;
  // an odd window with adaptive pooling on a window policy; alpha outside
  // (0, 1]; tau, beta not finite and > 0; kernel_size not odd and >= 1;
  // sink_tokens < 0; use_norm without metric kBefore; use_pyramid on a policy
  // other than restkv; span < 1 or overlap outside [0, span); adaptive=adakv
  // on a policy without candidate scores; adakv_cap not finite and >= 1.
  absl::Status Validate() const;
};

// A policy name with optional "+adakv" (head-wise budgets): sets kind and
// adaptive, e.g. "restkv+adakv". InvalidArgument for an unknown name or
// suffix. The suffix is not validated against the policy (Validate does).
absl::Status ApplyKvPolicySpec(std::string_view spec, KvPolicyConfig* config);
// The inverse: "snapkv", "restkv+adakv".
std::string KvPolicySpecName(const KvPolicyConfig& config);

// Sets one knob from text, e.g. ("alpha", "0.5"), ("pooling", "maxpool").
// Keys: budget, window, alpha, temporal (ema|mean|last|inv-ema), metric
// (after|before), use_wo, use_norm, tau, pooling (default|adaptive|avgpool|
// maxpool|none), beta (alias scale), kernel_size (alias k_min), gqa_reduce
// (mean|max), sink_tokens, use_pyramid, span, overlap, adaptive (none|adakv),
// adakv_cap, adakv_normalize; booleans true/false/1/0/yes/no.
// InvalidArgument for an unknown key or a malformed value. Does not Validate.
absl::Status ApplyKvPolicyOption(std::string_view key, std::string_view value,
                                 KvPolicyConfig* config);

// Applies "key=value,key=value" (whitespace around items ignored; empty = no-op).
absl::Status ApplyKvPolicyOptions(std::string_view spec, KvPolicyConfig* config);

// Human-readable summary of the knobs the policy uses, for logs.
std::string KvPolicyDebugString(const KvPolicyConfig& config);

// The pooling `config.kind` actually applies (resolves kDefault).
PoolingMode EffectivePooling(const KvPolicyConfig& config);

// True iff a prompt of num_tokens tokens is evicted at all.
bool EvictsPrompt(const KvPolicyConfig& config, int32_t num_tokens);

// Tokens layer `layer` keeps per KV head after prefill: num_tokens without
// eviction, else B, or K_l + w under the PyramidKV schedule (pyramidkv, or
// restkv with use_pyramid), or LaCacheKeptCount (<= B) for lacache. Standalone pyramidkv falls back
// to uniform B when N < 2(B - w) (§3). With B <= w the window shrinks (EffectiveWindow). REQUIRES:
// config valid, 0 <= layer < num_layers, num_tokens >= 0.
// With adaptive=adakv this is the layer's padded length bound,
// min(N - w, floor(adakv_cap * K_l)) + w: the most slots a layer can hold
// (every KV head keeps its own count, the layer's pages hold the largest).
int32_t KeptTokensForLayer(const KvPolicyConfig& config, int32_t layer, int32_t num_layers,
                           int32_t num_tokens);

// True iff the layer's heads keep head-wise counts (adaptive=adakv on a
// prompt the uniform budget evicts: K_l + w < N; the padded bound may still
// reach N, the heads then share the H*K_l candidates unevenly).
bool UsesAdaKv(const KvPolicyConfig& config, int32_t layer, int32_t num_layers, int32_t num_tokens);

// Candidates per KV head layer `layer` keeps before any head-wise
// reallocation (K_l: B - w, or the PyramidKV schedule); 0 when the policy has
// no candidate window or the prompt is not evicted.
int32_t UniformCandidates(const KvPolicyConfig& config, int32_t layer, int32_t num_layers,
                          int32_t num_tokens);
// The cap AdaKV applies to each head's candidates at this layer.
int32_t AdaKvHeadCap(const KvPolicyConfig& config, int32_t layer, int32_t num_layers,
                     int32_t num_tokens);

// Sum of KeptTokensForLayer over all layers (one KV head's worth).
int64_t KeptTokensAllLayers(const KvPolicyConfig& config, int32_t num_layers, int32_t num_tokens);

// How many trailing prompt queries SelectTokens reads (LayerScoringInput::
// num_queries must be at least this): 0 without eviction and for
// streamingllm/h2o, 1 for tova, the effective window for the others.
int32_t ScoringWindow(const KvPolicyConfig& config, int32_t num_tokens);

// The ladder shape lacache uses (sinks, recent band = window, span, overlap).
LadderShape LadderShapeOf(const KvPolicyConfig& config);

// Whether SelectTokens needs LayerScoringInput::wo_factor / h2o_scores.
bool NeedsWoFactor(const KvPolicyConfig& config);
bool NeedsH2oScores(const KvPolicyConfig& config);

}  // namespace restkv::engine
