#include "engine/eviction/policy_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace restkv::engine {
namespace {

using ::testing::HasSubstr;

KvPolicyConfig Policy(KvPolicyKind kind, int32_t budget) {
  KvPolicyConfig c;
  c.kind = kind;
  c.budget = budget;
  return c;
}

TEST(KvPolicyConfigTest, NamesRoundTrip) {
  for (auto kind : {KvPolicyKind::kFull, KvPolicyKind::kStreamingLlm, KvPolicyKind::kH2o,
                    KvPolicyKind::kTova, KvPolicyKind::kSnapKv, KvPolicyKind::kPyramidKv,
                    KvPolicyKind::kRestKv, KvPolicyKind::kLaCache}) {
    auto parsed = ParseKvPolicy(KvPolicyName(kind));
    ASSERT_TRUE(parsed.ok()) << KvPolicyName(kind);
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_EQ(*ParseKvPolicy("ReSTKV"), KvPolicyKind::kRestKv);
  auto bad = ParseKvPolicy("headkv");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("restkv"));
}

TEST(KvPolicyConfigTest, DefaultsAreTheScriptValues) {  // §2.6
  const KvPolicyConfig c;
  EXPECT_EQ(c.window, 32);
  EXPECT_FLOAT_EQ(c.alpha, 0.3f);
  EXPECT_EQ(c.temporal, TemporalMode::kEma);
  EXPECT_EQ(c.metric, MetricMode::kAfter);
  EXPECT_TRUE(c.use_wo);
  EXPECT_FALSE(c.use_norm);
  EXPECT_FLOAT_EQ(c.tau, 1.0f);
  EXPECT_FLOAT_EQ(c.beta, 2000.0f);
  EXPECT_EQ(c.kernel_size, 5);
  EXPECT_EQ(c.gqa_reduce, GqaReduce::kMean);
  EXPECT_EQ(c.sink_tokens, 4);
  EXPECT_TRUE(c.Validate().ok());
  EXPECT_EQ(EffectivePooling(Policy(KvPolicyKind::kRestKv, 128)), PoolingMode::kAdaptive);
  EXPECT_EQ(EffectivePooling(Policy(KvPolicyKind::kSnapKv, 128)), PoolingMode::kAvg);
  EXPECT_EQ(EffectivePooling(Policy(KvPolicyKind::kPyramidKv, 128)), PoolingMode::kAvg);
  EXPECT_EQ(EffectivePooling(Policy(KvPolicyKind::kH2o, 128)), PoolingMode::kNone);
}

TEST(KvPolicyConfigTest, ValidateNamesTheKnob) {
  struct Case {
    void (*mutate)(KvPolicyConfig*);
    const char* knob;
  };
  for (const Case& c : {
           Case{[](KvPolicyConfig* p) { p->budget = -1; }, "budget"},
           Case{[](KvPolicyConfig* p) { p->window = 0; }, "window"},
           Case{[](KvPolicyConfig* p) { p->window = 31; }, "window"},
           Case{[](KvPolicyConfig* p) { p->alpha = 0.0f; }, "alpha"},
           Case{[](KvPolicyConfig* p) { p->alpha = 1.5f; }, "alpha"},
           Case{[](KvPolicyConfig* p) { p->tau = -1.0f; }, "tau"},
           Case{[](KvPolicyConfig* p) { p->beta = 0.0f; }, "beta"},
           Case{[](KvPolicyConfig* p) { p->kernel_size = 4; }, "kernel_size"},
           Case{[](KvPolicyConfig* p) { p->sink_tokens = -2; }, "sink_tokens"},
           Case{[](KvPolicyConfig* p) { p->use_norm = true; }, "use_norm"},
       }) {
    KvPolicyConfig p = Policy(KvPolicyKind::kRestKv, 128);
    c.mutate(&p);
    const absl::Status s = p.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.knob;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.knob));
  }
  // An odd window is fine where nothing needs the drift halves.
  KvPolicyConfig snap = Policy(KvPolicyKind::kSnapKv, 128);
  snap.window = 31;
  EXPECT_TRUE(snap.Validate().ok());
  KvPolicyConfig pyr = Policy(KvPolicyKind::kSnapKv, 128);
  pyr.use_pyramid = true;
  EXPECT_THAT(std::string(pyr.Validate().message()), HasSubstr("use_pyramid"));
  KvPolicyConfig before = Policy(KvPolicyKind::kRestKv, 128);
  before.metric = MetricMode::kBefore;
  before.use_norm = true;
  EXPECT_TRUE(before.Validate().ok());
}

TEST(KvPolicyConfigTest, OptionsFromText) {
  KvPolicyConfig c = Policy(KvPolicyKind::kRestKv, 128);
  ASSERT_TRUE(
      ApplyKvPolicyOptions("alpha=0.5, window=16,temporal=inv-ema,metric=before,use_norm=true,"
                           "pooling=maxpool,scale=400,k_min=21,gqa_reduce=max,use_wo=0,tau=2,"
                           "sink_tokens=8,use_pyramid=yes,budget=256",
                           &c)
          .ok());
  EXPECT_FLOAT_EQ(c.alpha, 0.5f);
  EXPECT_EQ(c.window, 16);
  EXPECT_EQ(c.temporal, TemporalMode::kInvEma);
  EXPECT_EQ(c.metric, MetricMode::kBefore);
  EXPECT_TRUE(c.use_norm);
  EXPECT_EQ(c.pooling, PoolingMode::kMax);
  EXPECT_FLOAT_EQ(c.beta, 400.0f);
  EXPECT_EQ(c.kernel_size, 21);
  EXPECT_EQ(c.gqa_reduce, GqaReduce::kMax);
  EXPECT_FALSE(c.use_wo);
  EXPECT_FLOAT_EQ(c.tau, 2.0f);
  EXPECT_EQ(c.sink_tokens, 8);
  EXPECT_TRUE(c.use_pyramid);
  EXPECT_EQ(c.budget, 256);
  EXPECT_TRUE(c.Validate().ok());
  EXPECT_TRUE(ApplyKvPolicyOptions("", &c).ok());
  EXPECT_EQ(ApplyKvPolicyOption("alpha", "x", &c).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyKvPolicyOption("pooling", "median", &c).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyKvPolicyOption("colour", "1", &c).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApplyKvPolicyOptions("alpha", &c).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(KvPolicyDebugString(c), HasSubstr("restkv budget=256"));
}

TEST(KvPolicyConfigTest, NoEvictionKeepsThePrompt) {
  for (auto kind :
       {KvPolicyKind::kFull, KvPolicyKind::kStreamingLlm, KvPolicyKind::kH2o, KvPolicyKind::kTova,
        KvPolicyKind::kSnapKv, KvPolicyKind::kPyramidKv, KvPolicyKind::kRestKv}) {
    SCOPED_TRACE(KvPolicyName(kind));
    // full, budget 0 and N <= B never evict.
    EXPECT_EQ(KeptTokensForLayer(Policy(kind, 0), 0, 30, 5000), 5000);
    EXPECT_EQ(KeptTokensForLayer(Policy(kind, 128), 3, 30, 128), 128);
    EXPECT_EQ(KeptTokensForLayer(Policy(kind, 128), 3, 30, 100), 100);
    EXPECT_EQ(ScoringWindow(Policy(kind, 128), 128), 0);
    if (kind == KvPolicyKind::kFull) {
      EXPECT_EQ(KeptTokensForLayer(Policy(kind, 128), 3, 30, 5000), 5000);
    }
  }
}

TEST(KvPolicyConfigTest, UniformBudget) {
  for (auto kind : {KvPolicyKind::kStreamingLlm, KvPolicyKind::kH2o, KvPolicyKind::kTova,
                    KvPolicyKind::kSnapKv, KvPolicyKind::kRestKv}) {
    SCOPED_TRACE(KvPolicyName(kind));
    for (int32_t l = 0; l < 30; ++l)
      EXPECT_EQ(KeptTokensForLayer(Policy(kind, 128), l, 30, 129), 128);
    EXPECT_EQ(KeptTokensAllLayers(Policy(kind, 256), 30, 2048), 30 * 256);
  }
  EXPECT_EQ(ScoringWindow(Policy(KvPolicyKind::kRestKv, 128), 2048), 32);
  EXPECT_EQ(ScoringWindow(Policy(KvPolicyKind::kSnapKv, 128), 2048), 32);
  EXPECT_EQ(ScoringWindow(Policy(KvPolicyKind::kTova, 128), 2048), 1);
  EXPECT_EQ(ScoringWindow(Policy(KvPolicyKind::kH2o, 128), 2048), 0);
  EXPECT_EQ(ScoringWindow(Policy(KvPolicyKind::kStreamingLlm, 128), 2048), 0);
  EXPECT_TRUE(NeedsWoFactor(Policy(KvPolicyKind::kRestKv, 128)));
  EXPECT_FALSE(NeedsWoFactor(Policy(KvPolicyKind::kSnapKv, 128)));
  EXPECT_TRUE(NeedsH2oScores(Policy(KvPolicyKind::kH2o, 128)));
}

TEST(KvPolicyConfigTest, PyramidBudgets) {  // §3
  KvPolicyConfig rest = Policy(KvPolicyKind::kRestKv, 128);
  rest.use_pyramid = true;
  const KvPolicyConfig pyr = Policy(KvPolicyKind::kPyramidKv, 128);
  for (const KvPolicyConfig& c : {rest, pyr}) {
    SCOPED_TRACE(KvPolicyName(c.kind));
    EXPECT_EQ(KeptTokensForLayer(c, 0, 32, 100000), 188 + 32);
    EXPECT_EQ(KeptTokensForLayer(c, 31, 32, 100000), 33 + 32);
    EXPECT_EQ(KeptTokensAllLayers(c, 32, 100000), 3536 + 32 * 32);
    // Clamped case N = 200 (>= 2(B - w) = 192, so pyramidkv uses it too).
    EXPECT_EQ(KeptTokensForLayer(c, 0, 32, 200), 168 + 32);
    EXPECT_EQ(KeptTokensAllLayers(c, 32, 200), 3392 + 32 * 32);
  }
  // B < N < 2(B - w): standalone PyramidKV is uniform, ReST-KV clamps.
  EXPECT_EQ(KeptTokensForLayer(pyr, 0, 32, 150), 128);
  EXPECT_EQ(KeptTokensForLayer(rest, 0, 32, 150), 118 + 32);
  EXPECT_EQ(KeptTokensForLayer(rest, 31, 32, 150), 118 - 31 + 32);
}

TEST(KvPolicyConfigTest, SmallBudgetsShrinkTheWindow) {  // §1 [ours]
  const KvPolicyConfig c = Policy(KvPolicyKind::kRestKv, 20);
  EXPECT_EQ(KeptTokensForLayer(c, 0, 30, 1000), 20);
  EXPECT_EQ(ScoringWindow(c, 1000), 10);
  EXPECT_EQ(ScoringWindow(Policy(KvPolicyKind::kRestKv, 3), 1000), 0);  // last 3 only
  EXPECT_EQ(KeptTokensForLayer(Policy(KvPolicyKind::kRestKv, 3), 0, 30, 1000), 3);
}

}  // namespace
}  // namespace restkv::engine

namespace restkv::engine {
namespace {

TEST(KvPolicyConfigTest, PolicySpecWithAdaKvSuffix) {
  KvPolicyConfig c;
  ASSERT_TRUE(ApplyKvPolicySpec("ReSTKV+AdaKV", &c).ok());
  EXPECT_EQ(c.kind, KvPolicyKind::kRestKv);
  EXPECT_EQ(c.adaptive, AdaptiveBudget::kAdaKv);
  EXPECT_EQ(KvPolicySpecName(c), "restkv+adakv");
  ASSERT_TRUE(ApplyKvPolicySpec("snapkv", &c).ok());
  EXPECT_EQ(c.adaptive, AdaptiveBudget::kNone);
  EXPECT_EQ(KvPolicySpecName(c), "snapkv");
  EXPECT_FALSE(ApplyKvPolicySpec("snapkv+headkv", &c).ok());
  EXPECT_FALSE(ApplyKvPolicySpec("nope+adakv", &c).ok());
  ASSERT_TRUE(ApplyKvPolicyOptions("adaptive=adakv,adakv_cap=1.5,adakv_normalize=false", &c).ok());
  EXPECT_EQ(c.adaptive, AdaptiveBudget::kAdaKv);
  EXPECT_FLOAT_EQ(c.adakv_cap, 1.5f);
  EXPECT_FALSE(c.adakv_normalize);
  c.budget = 128;
  EXPECT_TRUE(c.Validate().ok());
  // K_l = 96; the padded bound floor(1.5 * 96) + 32 = 176.
  EXPECT_EQ(KeptTokensForLayer(c, 0, 30, 4096), 176);
  EXPECT_EQ(UniformCandidates(c, 0, 30, 4096), 96);
  c.adakv_cap = 0.5f;
  EXPECT_FALSE(c.Validate().ok());
}

}  // namespace
}  // namespace restkv::engine
