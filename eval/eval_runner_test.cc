#include "eval/eval_runner.h"

#include <cstring>
#include <numeric>

#include "engine/kv/kv_layer_hook.h"
#include "engine/kv/sequence_kv.h"
#include "eval/test_model.h"
#include "gtest/gtest.h"

namespace restkv::eval {
namespace {

using engine::KvPolicyConfig;
using engine::KvPolicyKind;

std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = 3 + (i * 37 + salt * 11 + (i * i) % 13) % 250;
  return t;
}

KvPolicyConfig Policy(KvPolicyKind kind, int32_t budget) {
  KvPolicyConfig p;
  p.kind = kind;
  p.budget = budget;
  p.window = 8;
  p.kernel_size = 3;
  return p;
}

class EvalRunnerTest : public ::testing::Test {
 protected:
  TestModel m_{"runner"};
  EvalRunner runner_{m_.model()};
  const engine::ModelConfig& config() { return m_.model().config(); }
};

TEST_F(EvalRunnerTest, StreamingLlmKeepsExactlySinkAndRecent) {
  const int n = 200, budget = 40;
  KvPolicyConfig p = Policy(KvPolicyKind::kStreamingLlm, budget);
  p.sink_tokens = 4;
  auto sel = runner_.Keep(Tokens(n, 1), p);
  ASSERT_TRUE(sel.ok()) << sel.status();
  EXPECT_TRUE(sel->evicted);
  std::vector<int32_t> want = {0, 1, 2, 3};
  for (int i = n - (budget - 4); i < n; ++i) want.push_back(i);
  ASSERT_EQ(sel->kept.size(), static_cast<size_t>(config().num_layers));
  for (const auto& layer : sel->kept) {
    ASSERT_EQ(layer.size(), static_cast<size_t>(config().num_kv_heads));
    for (const auto& head : layer) EXPECT_EQ(head, want);
  }
}

TEST_F(EvalRunnerTest, EveryPolicyFollowsTheBudgetRule) {
  const int n = 200;
  for (KvPolicyKind kind :
       {KvPolicyKind::kFull, KvPolicyKind::kStreamingLlm, KvPolicyKind::kH2o, KvPolicyKind::kTova,
        KvPolicyKind::kSnapKv, KvPolicyKind::kPyramidKv, KvPolicyKind::kRestKv}) {
    for (int budget : {40, 400}) {
      const KvPolicyConfig p = Policy(kind, budget);
      auto sel = runner_.Keep(Tokens(n, 2), p);
      ASSERT_TRUE(sel.ok()) << sel.status();
      for (int l = 0; l < config().num_layers; ++l) {
        const int want = engine::KeptTokensForLayer(p, l, config().num_layers, n);
        for (const auto& head : sel->kept[l]) {
          ASSERT_EQ(static_cast<int>(head.size()), want)
              << engine::KvPolicyName(kind) << " B=" << budget;
          EXPECT_TRUE(std::is_sorted(head.begin(), head.end()));
          EXPECT_TRUE(std::adjacent_find(head.begin(), head.end()) == head.end());
          EXPECT_GE(head.front(), 0);
          EXPECT_LT(head.back(), n);
        }
      }
      if (kind == KvPolicyKind::kFull || budget >= n) {
        EXPECT_FALSE(sel->evicted);
      } else {
        EXPECT_TRUE(sel->evicted);
      }
    }
  }
}

// The recorded selection is what the cache holds: slot i of layer l, head h
// holds the K of prompt position kept[l][h][i] from an unevicted prefill.
TEST_F(EvalRunnerTest, RecordedSelectionMatchesTheCompactedCache) {
  const auto& c = config();
  const std::vector<int32_t> prompt = Tokens(150, 3);
  const KvPolicyConfig p = Policy(KvPolicyKind::kRestKv, 48);
  const int bs = m_.model().forward().block_size();
  auto pool =
      *engine::BlockPool::Create(m_.model().backend(), {c.num_kv_heads, c.head_dim, bs}, 200);
  engine::SequenceKv full(*pool, c.num_layers), evicted(*pool, c.num_layers);
  engine::EvictionReport report;
  report.record_kept = true;
  std::vector<float> logits;
  for (engine::SequenceKv* kv : {&full, &evicted}) {
    engine::SequenceInput in;
    in.tokens = prompt;
    in.cached_len = kv->cached_len();
    in.pages = kv->page_ptrs();
    in.logits = engine::LogitsMode::kNone;
    engine::LayerEvictor evictor(m_.model().config(), m_.model().weights(), m_.model().backend());
    engine::KvLayerHook plain(*kv), evicting(*kv, p, evictor, &report);
    in.hook = kv == &evicted ? &evicting : &plain;
    ASSERT_TRUE(m_.model().forward().Forward({&in, 1}, &logits).ok());
  }
  ASSERT_EQ(report.kept.size(), static_cast<size_t>(c.num_layers));
  auto k_at = [&](const engine::SequenceKv& kv, int l, int h, int slot) {
    return kv.page_ptrs()[l][slot / bs] + (static_cast<int64_t>(h) * bs + slot % bs) * c.head_dim;
  };
  for (int l = 0; l < c.num_layers; ++l) {
    EXPECT_EQ(evicted.cached_len()[l], 48);
    for (int h = 0; h < c.num_kv_heads; ++h) {
      const auto& keep = report.kept[l][h];
      ASSERT_EQ(keep.size(), 48u);
      for (int i = 0; i < 48; ++i) {
        ASSERT_EQ(std::memcmp(k_at(evicted, l, h, i), k_at(full, l, h, keep[i]),
                              c.head_dim * sizeof(float)),
                  0)
            << "layer " << l << " head " << h << " slot " << i;
      }
    }
  }
  // And the runner reports the same selection.
  auto sel = runner_.Keep(prompt, p);
  ASSERT_TRUE(sel.ok());
  EXPECT_EQ(sel->kept, report.kept);
}

// Plain teacher forcing: one forward pass over the whole text, every row scored.
double PlainNll(engine::Model& model, const std::vector<int32_t>& tokens, int context) {
  const auto& c = model.config();
  const int bs = model.forward().block_size();
  auto pool = *engine::BlockPool::Create(model.backend(), {c.num_kv_heads, c.head_dim, bs}, 400);
  engine::SequenceKv kv(*pool, c.num_layers);
  engine::SequenceInput in;
  in.tokens = absl::MakeConstSpan(tokens.data(), tokens.size() - 1);
  in.cached_len = kv.cached_len();
  in.pages = kv.page_ptrs();
  in.logits = engine::LogitsMode::kAll;
  engine::KvLayerHook hook(kv);
  in.hook = &hook;
  std::vector<float> logits;
  EXPECT_TRUE(model.forward().Forward({&in, 1}, &logits).ok());
  double nll = 0;
  for (size_t i = context - 1; i + 1 < tokens.size(); ++i) {
    nll += NegLogLikelihood(logits.data() + i * c.vocab_size, c.vocab_size, tokens[i + 1]);
  }
  return nll;
}

TEST_F(EvalRunnerTest, FullPerplexityEqualsPlainTeacherForcingExactly) {
  const std::vector<int32_t> t = Tokens(260, 4);
  const int context = 200;
  auto full = runner_.Perplexity(t, context, Policy(KvPolicyKind::kFull, 0));
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->scored_tokens, 60);
  EXPECT_EQ(full->nll_sum, PlainNll(m_.model(), t, context));
  EXPECT_EQ(full->perplexity, std::exp(full->nll_sum / 60));
  // A budget at least the context keeps everything: equal to full, exactly.
  for (KvPolicyKind kind :
       {KvPolicyKind::kRestKv, KvPolicyKind::kSnapKv, KvPolicyKind::kStreamingLlm}) {
    auto big = runner_.Perplexity(t, context, Policy(kind, context));
    ASSERT_TRUE(big.ok());
    EXPECT_EQ(big->nll_sum, full->nll_sum) << engine::KvPolicyName(kind);
  }
  // A real budget changes the cache and the score.
  auto small = runner_.Perplexity(t, context, Policy(KvPolicyKind::kRestKv, 40));
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->kv_slots_after_prefill, 40 * config().num_layers);
  EXPECT_NE(small->nll_sum, full->nll_sum);
}

TEST_F(EvalRunnerTest, BadInputsAreErrors) {
  EXPECT_EQ(runner_.Perplexity(Tokens(10, 1), 10, Policy(KvPolicyKind::kFull, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runner_.Keep({}, Policy(KvPolicyKind::kFull, 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  KvPolicyConfig bad = Policy(KvPolicyKind::kRestKv, 10);
  bad.alpha = 2;
  EXPECT_EQ(runner_.Keep(Tokens(50, 1), bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EvalRunnerTest, GenerateRunsThroughTheEngine) {
  auto a = runner_.Generate(Tokens(120, 5), Policy(KvPolicyKind::kSnapKv, 32), 4);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->prompt_tokens, 120);
  EXPECT_EQ(a->kv_tokens_kept, 32);
  auto b = runner_.Generate(Tokens(120, 5), Policy(KvPolicyKind::kSnapKv, 32), 4);
  EXPECT_EQ(a->text, b->text);  // greedy
}

}  // namespace
}  // namespace restkv::eval
