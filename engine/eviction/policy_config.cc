#include "engine/eviction/policy_config.h"

#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/check.h"
#include "common/status_macros.h"

namespace restkv::engine {
namespace {

// Debian's Abseil keeps its own string_view type.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr std::pair<std::string_view, KvPolicyKind> kPolicyNames[] = {
    {"full", KvPolicyKind::kFull},     {"streamingllm", KvPolicyKind::kStreamingLlm},
    {"h2o", KvPolicyKind::kH2o},       {"tova", KvPolicyKind::kTova},
    {"snapkv", KvPolicyKind::kSnapKv}, {"pyramidkv", KvPolicyKind::kPyramidKv},
    {"restkv", KvPolicyKind::kRestKv}, {"lacache", KvPolicyKind::kLaCache},
};
constexpr std::pair<std::string_view, TemporalMode> kTemporalNames[] = {
    {"ema", TemporalMode::kEma},        {"mean", TemporalMode::kMean},
    {"last", TemporalMode::kLast},      {"none", TemporalMode::kLast},
    {"inv-ema", TemporalMode::kInvEma}, {"inv_ema", TemporalMode::kInvEma},
};
constexpr std::pair<std::string_view, MetricMode> kMetricNames[] = {
    {"after", MetricMode::kAfter}, {"before", MetricMode::kBefore}};
constexpr std::pair<std::string_view, PoolingMode> kPoolingNames[] = {
    {"default", PoolingMode::kDefault}, {"adaptive", PoolingMode::kAdaptive},
    {"avgpool", PoolingMode::kAvg},     {"maxpool", PoolingMode::kMax},
    {"none", PoolingMode::kNone},
};
constexpr std::pair<std::string_view, AdaptiveBudget> kAdaptiveNames[] = {
    {"none", AdaptiveBudget::kNone}, {"adakv", AdaptiveBudget::kAdaKv}};
constexpr std::pair<std::string_view, GqaReduce> kGqaNames[] = {{"mean", GqaReduce::kMean},
                                                                {"max", GqaReduce::kMax}};

template <typename Enum, size_t N>
absl::StatusOr<Enum> Lookup(const std::pair<std::string_view, Enum> (&table)[N],
                            std::string_view knob, std::string_view text) {
  const std::string lower = absl::AsciiStrToLower(Sv(text));
  std::string names;
  for (const auto& [name, value] : table) {
    if (name == lower) return value;
    absl::StrAppend(&names, names.empty() ? "" : ", ", Sv(name));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ", Sv(knob), " '", Sv(text), "' (expected one of: ", names, ")"));
}

template <typename Enum, size_t N>
std::string_view NameOf(const std::pair<std::string_view, Enum> (&table)[N], Enum value) {
  for (const auto& [name, v] : table) {
    if (v == value) return name;
  }
  return "?";
}

bool UsesWindowScores(KvPolicyKind kind) {
  return kind == KvPolicyKind::kSnapKv || kind == KvPolicyKind::kPyramidKv ||
         kind == KvPolicyKind::kRestKv;
}

bool UsesCandidateWindow(KvPolicyKind kind) {
  return UsesWindowScores(kind) || kind == KvPolicyKind::kH2o;
}

absl::Status BadValue(std::string_view key, std::string_view value, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("kv policy option ", Sv(key), "='", Sv(value), "': expected ", Sv(what)));
}

}  // namespace

absl::StatusOr<KvPolicyKind> ParseKvPolicy(std::string_view name) {
  return Lookup(kPolicyNames, "kv policy", name);
}

std::string_view KvPolicyName(KvPolicyKind kind) { return NameOf(kPolicyNames, kind); }

absl::Status ApplyKvPolicySpec(std::string_view spec, KvPolicyConfig* config) {
  const size_t plus = spec.find('+');
  RESTKV_ASSIGN_OR_RETURN(config->kind, ParseKvPolicy(spec.substr(0, plus)));
  config->adaptive = AdaptiveBudget::kNone;
  if (plus == std::string_view::npos) return absl::OkStatus();
  const std::string suffix = absl::AsciiStrToLower(Sv(spec.substr(plus + 1)));
  if (suffix != "adakv") {
    return absl::InvalidArgumentError(absl::StrCat("kv policy '", Sv(spec), "': unknown suffix '+",
                                                   suffix, "' (expected +adakv)"));
  }
  config->adaptive = AdaptiveBudget::kAdaKv;
  return absl::OkStatus();
}

std::string KvPolicySpecName(const KvPolicyConfig& config) {
  std::string name(KvPolicyName(config.kind));
  if (config.adaptive == AdaptiveBudget::kAdaKv) name += "+adakv";
  return name;
}

absl::Status KvPolicyConfig::Validate() const {
  auto bad = [](std::string_view knob, const auto& value, std::string_view rule) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv policy: ", Sv(knob), " = ", value, " ", Sv(rule)));
  };
  if (budget < 0) return bad("budget", budget, "must be >= 0");
  if (window < 1) return bad("window", window, "must be >= 1");
  if (UsesWindowScores(kind) && EffectivePooling(*this) == PoolingMode::kAdaptive &&
      window % 2 != 0) {
    return bad("window", window, "must be even with adaptive pooling");
  }
  if (!(alpha > 0.0f && alpha <= 1.0f)) return bad("alpha", alpha, "must be in (0, 1]");
  if (!(std::isfinite(tau) && tau > 0.0f)) return bad("tau", tau, "must be finite and > 0");
  if (!(std::isfinite(beta) && beta > 0.0f)) return bad("beta", beta, "must be finite and > 0");
  if (kernel_size < 1 || kernel_size % 2 == 0) {
    return bad("kernel_size", kernel_size, "must be odd and >= 1");
  }
  if (sink_tokens < 0) return bad("sink_tokens", sink_tokens, "must be >= 0");
  if (use_norm && metric != MetricMode::kBefore) {
    return bad("use_norm", "true", "requires metric=before");
  }
  if (use_pyramid && kind != KvPolicyKind::kRestKv) {
    return bad("use_pyramid", "true", "applies to restkv only (use pyramidkv)");
  }
  if (adaptive == AdaptiveBudget::kAdaKv && !UsesCandidateWindow(kind) &&
      kind != KvPolicyKind::kFull) {
    return bad("adaptive", "adakv", "applies to h2o, snapkv, pyramidkv and restkv only");
  }
  if (!(std::isfinite(adakv_cap) && adakv_cap >= 1.0f)) {
    return bad("adakv_cap", adakv_cap, "must be finite and >= 1");
  }
  if (span < 1) return bad("span", span, "must be >= 1");
  if (overlap < 0 || overlap >= span) return bad("overlap", overlap, "must be in [0, span)");
  return absl::OkStatus();
}

absl::Status ApplyKvPolicyOption(std::string_view key, std::string_view value,
                                 KvPolicyConfig* config) {
  auto as_int = [&](int32_t* out) {
    return absl::SimpleAtoi(Sv(value), out) ? absl::OkStatus() : BadValue(key, value, "an integer");
  };
  auto as_float = [&](float* out) {
    return absl::SimpleAtof(Sv(value), out) ? absl::OkStatus() : BadValue(key, value, "a number");
  };
  auto as_bool = [&](bool* out) {
    return absl::SimpleAtob(Sv(value), out) ? absl::OkStatus() : BadValue(key, value, "a boolean");
  };
  const std::string k = absl::AsciiStrToLower(Sv(key));
  if (k == "budget") return as_int(&config->budget);
  if (k == "window") return as_int(&config->window);
  if (k == "alpha") return as_float(&config->alpha);
  if (k == "tau") return as_float(&config->tau);
  if (k == "beta" || k == "scale") return as_float(&config->beta);
  if (k == "kernel_size" || k == "k_min") return as_int(&config->kernel_size);
  if (k == "sink_tokens") return as_int(&config->sink_tokens);
  if (k == "use_wo") return as_bool(&config->use_wo);
  if (k == "use_norm") return as_bool(&config->use_norm);
  if (k == "use_pyramid") return as_bool(&config->use_pyramid);
  if (k == "adakv_cap") return as_float(&config->adakv_cap);
  if (k == "adakv_normalize") return as_bool(&config->adakv_normalize);
  if (k == "adaptive") {
    RESTKV_ASSIGN_OR_RETURN(config->adaptive, Lookup(kAdaptiveNames, "adaptive", value));
    return absl::OkStatus();
  }
  if (k == "span") return as_int(&config->span);
  if (k == "overlap") return as_int(&config->overlap);
  if (k == "temporal") {
    RESTKV_ASSIGN_OR_RETURN(config->temporal, Lookup(kTemporalNames, "temporal", value));
    return absl::OkStatus();
  }
  if (k == "metric") {
    RESTKV_ASSIGN_OR_RETURN(config->metric, Lookup(kMetricNames, "metric", value));
    return absl::OkStatus();
  }
  if (k == "pooling") {
    RESTKV_ASSIGN_OR_RETURN(config->pooling, Lookup(kPoolingNames, "pooling", value));
    return absl::OkStatus();
  }
  if (k == "gqa_reduce") {
    RESTKV_ASSIGN_OR_RETURN(config->gqa_reduce, Lookup(kGqaNames, "gqa_reduce", value));
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown kv policy option '", Sv(key), "'"));
}

absl::Status ApplyKvPolicyOptions(std::string_view spec, KvPolicyConfig* config) {
  for (absl::string_view item : absl::StrSplit(Sv(spec), ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    const size_t eq = item.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("kv policy option '", item, "': expected key=value"));
    }
    const absl::string_view key = absl::StripAsciiWhitespace(item.substr(0, eq));
    const absl::string_view value = absl::StripAsciiWhitespace(item.substr(eq + 1));
    RESTKV_RETURN_IF_ERROR(ApplyKvPolicyOption(std::string_view(key.data(), key.size()),
                                               std::string_view(value.data(), value.size()),
                                               config));
  }
  return absl::OkStatus();
}

std::string KvPolicyDebugString(const KvPolicyConfig& c) {
  std::string out = absl::StrFormat("%s budget=%d", Sv(KvPolicyName(c.kind)), c.budget);
  switch (c.kind) {
    case KvPolicyKind::kFull:
    case KvPolicyKind::kTova:
      break;
    case KvPolicyKind::kStreamingLlm:
      absl::StrAppendFormat(&out, " sink_tokens=%d", c.sink_tokens);
      break;
    case KvPolicyKind::kLaCache:
      absl::StrAppendFormat(&out, " sink_tokens=%d window=%d span=%d overlap=%d", c.sink_tokens,
                            c.window, c.span, c.overlap);
      break;
    case KvPolicyKind::kH2o:
      absl::StrAppendFormat(&out, " window=%d gqa_reduce=%s", c.window,
                            Sv(NameOf(kGqaNames, c.gqa_reduce)));
      break;
    case KvPolicyKind::kRestKv:
      absl::StrAppendFormat(&out, " alpha=%g temporal=%s metric=%s use_wo=%d use_norm=%d tau=%g",
                            c.alpha, Sv(NameOf(kTemporalNames, c.temporal)),
                            Sv(NameOf(kMetricNames, c.metric)), c.use_wo, c.use_norm, c.tau);
      if (c.use_pyramid) absl::StrAppend(&out, " use_pyramid=1");
      [[fallthrough]];
    case KvPolicyKind::kSnapKv:
    case KvPolicyKind::kPyramidKv:
      absl::StrAppendFormat(&out, " window=%d pooling=%s beta=%g kernel_size=%d gqa_reduce=%s",
                            c.window, Sv(NameOf(kPoolingNames, EffectivePooling(c))), c.beta,
                            c.kernel_size, Sv(NameOf(kGqaNames, c.gqa_reduce)));
      break;
  }
  if (c.adaptive == AdaptiveBudget::kAdaKv) {
    absl::StrAppendFormat(&out, " adaptive=adakv adakv_cap=%g adakv_normalize=%d", c.adakv_cap,
                          c.adakv_normalize);
  }
  return out;
}

PoolingMode EffectivePooling(const KvPolicyConfig& config) {
  switch (config.kind) {
    case KvPolicyKind::kRestKv:
      return config.pooling == PoolingMode::kDefault ? PoolingMode::kAdaptive : config.pooling;
    case KvPolicyKind::kSnapKv:
    case KvPolicyKind::kPyramidKv:
      return config.pooling == PoolingMode::kDefault ? PoolingMode::kAvg : config.pooling;
    default:
      return PoolingMode::kNone;
  }
}

bool EvictsPrompt(const KvPolicyConfig& config, int32_t num_tokens) {
  return config.kind != KvPolicyKind::kFull && config.budget > 0 && num_tokens > config.budget;
}

int32_t UniformCandidates(const KvPolicyConfig& config, int32_t layer, int32_t num_layers,
                          int32_t num_tokens) {
  RESTKV_CHECK(layer >= 0 && layer < num_layers) << layer << " of " << num_layers;
  if (!EvictsPrompt(config, num_tokens) || !UsesCandidateWindow(config.kind)) return 0;
  const int32_t budget = config.budget;
  const int32_t window = EffectiveWindow(budget, config.window);
  const bool pyramid = config.kind == KvPolicyKind::kPyramidKv ||
                       (config.kind == KvPolicyKind::kRestKv && config.use_pyramid);
  if (!pyramid || window >= budget) return budget - window;
  if (config.kind == KvPolicyKind::kPyramidKv && num_tokens < 2 * (budget - window)) {
    return budget - window;
  }
  return PyramidCandidates(budget, window, num_tokens, layer, num_layers);
}

int32_t AdaKvHeadCap(const KvPolicyConfig& config, int32_t layer, int32_t num_layers,
                     int32_t num_tokens) {
  const int32_t k = UniformCandidates(config, layer, num_layers, num_tokens);
  const int32_t m = num_tokens - EffectiveWindow(config.budget, config.window);
  return static_cast<int32_t>(
      std::min<double>(m, std::floor(static_cast<double>(config.adakv_cap) * k)));
}

bool UsesAdaKv(const KvPolicyConfig& config, int32_t layer, int32_t num_layers,
               int32_t num_tokens) {
  return config.adaptive == AdaptiveBudget::kAdaKv && EvictsPrompt(config, num_tokens) &&
         UniformCandidates(config, layer, num_layers, num_tokens) +
                 EffectiveWindow(config.budget, config.window) <
             num_tokens;
}

int32_t KeptTokensForLayer(const KvPolicyConfig& config, int32_t layer, int32_t num_layers,
                           int32_t num_tokens) {
  RESTKV_CHECK(layer >= 0 && layer < num_layers) << layer << " of " << num_layers;
  if (!EvictsPrompt(config, num_tokens)) return num_tokens;
  const int32_t budget = config.budget;
  if (config.kind == KvPolicyKind::kLaCache) {
    return LaCacheKeptCount(num_tokens, budget, LadderShapeOf(config), num_layers);
  }
  if (!UsesCandidateWindow(config.kind)) return budget;
  const int32_t window = EffectiveWindow(budget, config.window);
  if (config.adaptive == AdaptiveBudget::kAdaKv && window < budget) {
    return AdaKvHeadCap(config, layer, num_layers, num_tokens) + window;
  }
  return UniformCandidates(config, layer, num_layers, num_tokens) + window;
}

int64_t KeptTokensAllLayers(const KvPolicyConfig& config, int32_t num_layers, int32_t num_tokens) {
  int64_t total = 0;
  for (int32_t l = 0; l < num_layers; ++l) {
    total += KeptTokensForLayer(config, l, num_layers, num_tokens);
  }
  return total;
}

int32_t ScoringWindow(const KvPolicyConfig& config, int32_t num_tokens) {
  if (!EvictsPrompt(config, num_tokens)) return 0;
  if (config.kind == KvPolicyKind::kTova) return 1;
  if (!UsesWindowScores(config.kind)) return 0;
  const int32_t window = EffectiveWindow(config.budget, config.window);
  return window < config.budget ? window : 0;
}

LadderShape LadderShapeOf(const KvPolicyConfig& config) {
  return LadderShape{.sink = config.sink_tokens,
                     .recent = config.window,
                     .span = config.span,
                     .overlap = config.overlap};
}

bool NeedsWoFactor(const KvPolicyConfig& config) {
  return config.kind == KvPolicyKind::kRestKv && config.use_wo;
}

bool NeedsH2oScores(const KvPolicyConfig& config) { return config.kind == KvPolicyKind::kH2o; }

}  // namespace restkv::engine
