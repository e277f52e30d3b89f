// The scheduler's step-time budget: slices sized by a StepCost so that a step
// carrying decodes stays under max_step_ms, over budgets and contexts.
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "scheduler/scheduler.h"
#include "scheduler/testing/fake_kv_allocator.h"

namespace restkv::scheduler {
namespace {

using FakeKv = FakeKvAllocator;

// One engine step as far as the KV cache sees it: the slices' pages are taken
// (the forward pass in production; a chunked layer's with its first chunk),
// then the scheduler counts the progress.
void RunStep(Scheduler& s, FakeKv& kv, const SchedulerOutput& out) {
  for (const PrefillSlice& p : out.prefills) {
    if (p.token_begin > 0) continue;
    ASSERT_TRUE(kv.RunPrefill(p.id, p.num_tokens, p.layer_begin, p.layer_end, p.prefix_tokens))
        << "the scheduler promised pages the pool does not have, request " << p.id;
  }
  s.Update(out);
}

constexpr int32_t kLayers = 4;
// 1 ms per layer pass, 0.01 ms per token-layer, no attention term: one layer
// of a 1000-token prompt run alone costs 1 + 10 = 11 ms.
constexpr StepCost kFlat{1.0, 0.01, 0.0};
// The same with 1e-5 ms per attention pair: one layer of n tokens adds
// n (n + 1) / 2 · 1e-5 ms (5.005 ms at 1000 tokens, 20.01 ms at 2000).
constexpr StepCost kWithAttention{1.0, 0.01, 1e-5};

SchedulerConfig Timed(double max_step_ms, double lone_ms = 0) {
  return {.num_layers = kLayers,
          .max_num_seqs = 16,
          .max_num_batched_tokens = 100000,  // time binds, not tokens
          .max_step_ms = max_step_ms,
          .lone_prefill_step_ms = lone_ms};
}

// Request 1 (10 tokens) prefills and then decodes every step.
void StartDecoding(Scheduler& s, FakeKv& kv, const StepCost& cost) {
  s.Add({1, 0, 10});
  SchedulerOutput out = s.Schedule(cost);
  RunStep(s, kv, out);
  ASSERT_TRUE(s.IsDecoding(1));
}

using Slices = std::vector<std::pair<int32_t, int32_t>>;

// The layer range planned for `id` this step; (0, 0) if none.
std::pair<int32_t, int32_t> SliceOf(const SchedulerOutput& out, RequestId id) {
  for (const PrefillSlice& p : out.prefills) {
    if (p.id == id) return {p.layer_begin, p.layer_end};
  }
  return {0, 0};
}

// Runs steps until request `id` decodes; returns its slices and checks that
// the decode ran in every step and each step's planned cost stayed under the
// budget (unless `may_exceed`: a single layer that is over it anyway).
Slices PrefillBesideDecode(Scheduler& s, FakeKv& kv, RequestId id, const StepCost& cost,
                           double max_step_ms, bool may_exceed) {
  Slices slices;
  for (int step = 0; step < 20 && !s.IsDecoding(id); ++step) {
    SchedulerOutput out = s.Schedule(cost);
    EXPECT_EQ(out.decodes, std::vector<RequestId>{1}) << "step " << step;
    for (const PrefillSlice& p : out.prefills) {
      if (p.id == id) slices.emplace_back(p.layer_begin, p.layer_end);
    }
    if (max_step_ms > 0 && !may_exceed) {
      EXPECT_LE(cost.Ms(out.work), max_step_ms) << "step " << step;
    }
    RunStep(s, kv, out);
  }
  return slices;
}

TEST(StepBudgetTest, SlicesFitTheStepTimeOverBudgetsAndContexts) {
  struct Row {
    const char* name;
    StepCost cost;
    double max_step_ms;
    int32_t prompt_tokens;
    Slices expected;
    bool may_exceed = false;
  };
  // The decode costs 4 passes + 4 token-layers + 44 pairs ≈ 4.04 ms.
  const std::vector<Row> table = {
      {"untimed: the whole prompt in one step", kFlat, 0, 1000, {{0, 4}}},
      {"50 ms: the whole prompt (40 ms in the batched call) fits", kFlat, 50, 1000, {{0, 4}}},
      {"30 ms: 2 layers alone (22 ms) per step", kFlat, 30, 1000, {{0, 2}, {2, 4}}},
      {"20 ms: 1 layer (11 ms) per step", kFlat, 20, 1000, {{0, 1}, {1, 2}, {2, 3}, {3, 4}}},
      {"15 ms: 1 layer is over the budget but progresses",
       kFlat,
       15,
       1000,
       {{0, 1}, {1, 2}, {2, 3}, {3, 4}},
       /*may_exceed=*/true},
      {"attention, 500 tokens: the whole prompt (25 ms) fits 50 ms",
       kWithAttention,
       50,
       500,
       {{0, 4}}},
      {"attention, 1000 tokens: 2 layers of 16 ms", kWithAttention, 50, 1000, {{0, 2}, {2, 4}}},
      {"attention, 2000 tokens: 1 layer of 41 ms",
       kWithAttention,
       50,
       2000,
       {{0, 1}, {1, 2}, {2, 3}, {3, 4}}},
      {"attention, 2000 tokens, 90 ms: 2 layers", kWithAttention, 90, 2000, {{0, 2}, {2, 4}}},
  };
  for (const Row& row : table) {
    FakeKv kv(100000, kLayers);
    Scheduler s(Timed(row.max_step_ms), kv);
    StartDecoding(s, kv, row.cost);
    s.Add({2, 0, row.prompt_tokens});
    EXPECT_EQ(PrefillBesideDecode(s, kv, 2, row.cost, row.max_step_ms, row.may_exceed),
              row.expected)
        << row.name;
    EXPECT_TRUE(s.IsDecoding(2)) << row.name;
  }
}

TEST(StepBudgetTest, WorkOfAStepIsWhatTheEngineRuns) {
  FakeKv kv(100000, kLayers);
  Scheduler s(Timed(30), kv);
  StartDecoding(s, kv, kFlat);
  s.Add({2, 0, 1000});
  const SchedulerOutput out = s.Schedule(kFlat);
  ASSERT_EQ(out.prefills.size(), 1u);
  EXPECT_EQ(out.prefills[0].layer_end, 2);
  // The batched call (the decode): 4 passes; the slice alone: 2 more.
  EXPECT_EQ(out.work, (StepWork{4 + 2, 4 + 2 * 1000, 4 * 11 + 2 * CausalPairs(0, 1000)}));
  EXPECT_EQ(out.token_layers, 4 + 2000);
  EXPECT_EQ(out.prefill_token_layers, 2000);
}

// A short prompt arriving while a long one prefills is finished in the next
// step, beside the long slice, instead of waiting for the long prefill.
TEST(StepBudgetTest, ShortPromptIsNotQueuedBehindALongPrefill) {
  FakeKv kv(100000, kLayers);
  Scheduler s(Timed(50), kv);
  StartDecoding(s, kv, kWithAttention);
  s.Add({2, 0, 2000});  // 41 ms a layer: one layer a step
  SchedulerOutput out = s.Schedule(kWithAttention);
  ASSERT_EQ(out.prefills.size(), 1u);
  RunStep(s, kv, out);
  s.Add({3, 0, 20});  // ~0.8 ms for all layers in the batched call
  out = s.Schedule(kWithAttention);
  EXPECT_EQ(out.prefills.size(), 2u);
  EXPECT_EQ(SliceOf(out, 3), std::make_pair(0, kLayers));  // all of it, at once
  EXPECT_EQ(SliceOf(out, 2), std::make_pair(1, 2));
  RunStep(s, kv, out);
  EXPECT_TRUE(s.IsDecoding(3));
  EXPECT_FALSE(s.IsDecoding(2));
}

// Short prompts arriving faster than the budget takes them get the
// shortest-first half of the prefill budget; the long prefill, oldest, is
// served first from the other half: a layer a step, within the budget. (By
// least remaining work alone it would get nothing but the forced layer, past
// the budget, as long as short prompts keep coming.)
TEST(StepBudgetTest, ShortPromptsLeaveTheLongPrefillItsShare) {
  FakeKv kv(1000000, kLayers);
  Scheduler s(Timed(100), kv);
  StartDecoding(s, kv, kFlat);
  s.Add({2, 0, 3000});  // 31 ms a layer alone; 120 ms for the whole prompt
  RequestId next = 100;
  std::vector<int32_t> long_layers, finished;
  for (int step = 0; step < 10 && !s.IsDecoding(2); ++step) {
    // Twenty 100-token prompts a step, 4 ms each in the batched call: 80 ms,
    // more than half of the ~96 ms left after the decode.
    for (int i = 0; i < 20; ++i) s.Add({next++, 0, 100});
    const SchedulerOutput out = s.Schedule(kFlat);
    const auto [begin, end] = SliceOf(out, 2);
    long_layers.push_back(end - begin);
    finished.push_back(0);
    for (const PrefillSlice& p : out.prefills)
      finished.back() += p.id >= 100 && p.layer_end == kLayers;
    EXPECT_LE(kFlat.Ms(out.work), 100) << "step " << step;
    RunStep(s, kv, out);
    // The short ones stop after their first token (max_tokens 1), so the
    // decode load stays one request.
    for (RequestId id = 100; id < next; ++id) {
      if (s.IsDecoding(id)) s.Remove(id);
    }
  }
  // Every step: 11 short prompts (44 ms) in the 48 ms shortest-first share,
  // then, oldest first, one layer of the long one (31 ms) and a few more
  // short ones in what is left (work conserving). The long prompt moves a
  // layer a step, within the budget, however many short ones wait.
  EXPECT_EQ(long_layers, (std::vector<int32_t>{1, 1, 1, 1}))
      << "layers of the long prefill per step";
  for (size_t step = 0; step < finished.size(); ++step) {
    EXPECT_GE(finished[step], 11) << "short prompts finished in step " << step;
  }
}

// On a slow machine even a short prompt may not fit a step whole: it still
// gets the shortest-first share every step, beside the long prefill's
// chunks, instead of waiting for the long prefill to end (all within budget).
TEST(StepBudgetTest, ShortPromptOverTheShareStillProgressesEveryStep) {
  FakeKv kv(1000000, kLayers);
  Scheduler s(Timed(50), kv);
  StartDecoding(s, kv, kFlat);
  NewRequest long_prompt{2, 0, 3000};  // 120 ms in all, 31 ms a layer
  long_prompt.chunkable = true;
  s.Add(long_prompt);
  RunStep(s, kv, s.Schedule(kFlat));
  NewRequest short_prompt{3, 0, 1000};  // 40 ms in all: over the 23 ms share
  short_prompt.chunkable = true;
  s.Add(short_prompt);
  for (int step = 0; step < 2; ++step) {
    const SchedulerOutput out = s.Schedule(kFlat);
    EXPECT_EQ(SliceOf(out, 3), std::make_pair(2 * step, 2 * step + 2)) << "step " << step;
    EXPECT_NE(SliceOf(out, 2), std::make_pair(0, 0)) << "the long one moves too, step " << step;
    EXPECT_LE(kFlat.Ms(out.work), 50) << "step " << step;
    RunStep(s, kv, out);
  }
  EXPECT_TRUE(s.IsDecoding(3));
  EXPECT_FALSE(s.IsDecoding(2));
}

// Long prefills progress oldest first: the second waits while the first
// takes the budget.
TEST(StepBudgetTest, LongPrefillsProgressOldestFirst) {
  FakeKv kv(100000, kLayers);
  Scheduler s(Timed(31), kv);  // 27 ms after the decode: 2 layers of 11 ms
  StartDecoding(s, kv, kFlat);
  s.Add({2, 0, 1000});
  s.Add({3, 0, 1000});
  struct Expected {
    int step;
    Slices of2, of3;
  };
  const std::vector<Expected> table = {
      {0, {{0, 2}}, {}},
      {1, {{2, 4}}, {}},
      {2, {}, {{0, 2}}},
      {3, {}, {{2, 4}}},
  };
  for (const Expected& row : table) {
    const SchedulerOutput out = s.Schedule(kFlat);
    Slices of2, of3;
    for (const PrefillSlice& p : out.prefills) {
      (p.id == 2 ? of2 : of3).emplace_back(p.layer_begin, p.layer_end);
    }
    EXPECT_EQ(of2, row.of2) << "step " << row.step;
    EXPECT_EQ(of3, row.of3) << "step " << row.step;
    RunStep(s, kv, out);
  }
  EXPECT_TRUE(s.IsDecoding(3));
}

// With no decode in the step, a prefill may use lone_prefill_step_ms.
TEST(StepBudgetTest, LonePrefillUsesTheLargerBudget) {
  FakeKv kv(100000, kLayers);
  Scheduler s(Timed(30, /*lone_ms=*/100), kv);
  s.Add({2, 0, 1000});  // 44 ms alone for all 4 layers
  SchedulerOutput out = s.Schedule(kFlat);
  ASSERT_EQ(out.prefills.size(), 1u);
  EXPECT_EQ(out.prefills[0].layer_end, 4);
  FakeKv kv2(100000, kLayers);
  Scheduler t(Timed(30, /*lone_ms=*/25), kv2);
  t.Add({2, 0, 1000});
  out = t.Schedule(kFlat);
  ASSERT_EQ(out.prefills.size(), 1u);
  EXPECT_EQ(out.prefills[0].layer_end, 2);  // 22 ms
}

// max_num_batched_tokens stays an upper bound under a generous time budget.
TEST(StepBudgetTest, TokenBudgetStillBounds) {
  FakeKv kv(100000, kLayers);
  SchedulerConfig config = Timed(1000);
  config.max_num_batched_tokens = 600;  // 2400 token-layers a step
  Scheduler s(config, kv);
  StartDecoding(s, kv, kFlat);
  s.Add({2, 0, 1000});
  const SchedulerOutput out = s.Schedule(kFlat);
  ASSERT_EQ(out.prefills.size(), 1u);
  EXPECT_EQ(out.prefills[0].layer_end, 2);  // (2400 - 4) / 1000
  EXPECT_LE(out.token_layers, 2400);
}

// A waiting short prompt behind a waiting long head is finished at once; the
// head, ahead of it in admission order, is admitted too and keeps its pages.
TEST(StepBudgetTest, AdmissionKeepsOrderWhenAShortPromptGoesFirst) {
  FakeKv kv(100000, kLayers);
  Scheduler s(Timed(30), kv);
  StartDecoding(s, kv, kWithAttention);
  s.Add({2, 0, 3000});  // 76 ms a layer: over the budget, gets the forced layer
  s.Add({3, 0, 10});
  const SchedulerOutput out = s.Schedule(kWithAttention);
  EXPECT_EQ(out.prefills.size(), 2u);
  EXPECT_EQ(SliceOf(out, 3), std::make_pair(0, kLayers));
  EXPECT_EQ(SliceOf(out, 2), std::make_pair(0, 1));
  EXPECT_EQ(s.num_waiting(), 0);
}

// A chunkable prompt one of whose layers is over the budget is split by
// tokens within the layer: every step stays under the budget, each layer's
// chunks cover its rows in order, and no chunk (the last included) is
// smaller than kMinChunkTokens. Over budgets and prompt lengths.
TEST(StepBudgetTest, ChunkableLayersSplitByTokensToFitTheBudget) {
  struct Row {
    double max_step_ms;
    int32_t prompt_tokens;
    int expected_steps;
  };
  // One layer alone costs 1 + 0.01 n + 5e-6 n^2 ms: 76 ms at 3000 tokens,
  // 241 ms at 6000. About 46 ms (126 ms) is left beside the decode.
  const std::vector<Row> table = {
      {50, 3000, 8},   // rows 0..2161 (45 ms), then 2161..3000 (31 ms): 2 chunks a layer
      {90, 3000, 4},   // a whole layer a step
      {50, 6000, 24},  // 0..2161..3357..4289..5080..5488..6000: attention grows along
                       // the layer, so chunks shrink; the fifth stops at 5488 to leave
                       // the last one its 512 rows
      {130, 6000, 8},  // 0..4098, then the last 1902 rows (116 ms)
  };
  for (const Row& row : table) {
    FakeKv kv(1000000, kLayers);
    Scheduler s(Timed(row.max_step_ms), kv);
    StartDecoding(s, kv, kWithAttention);
    NewRequest r{2, 0, row.prompt_tokens};
    r.chunkable = true;
    s.Add(r);
    int steps = 0;
    std::vector<int32_t> next_row(kLayers, 0);
    int32_t next_layer = 0;
    for (; steps < 100 && !s.IsDecoding(2); ++steps) {
      const SchedulerOutput out = s.Schedule(kWithAttention);
      ASSERT_EQ(out.prefills.size(), 1u) << row.prompt_tokens << " step " << steps;
      const PrefillSlice& p = out.prefills[0];
      EXPECT_LE(kWithAttention.Ms(out.work), row.max_step_ms)
          << row.prompt_tokens << " step " << steps;
      EXPECT_EQ(p.layer_begin, next_layer) << row.prompt_tokens << " step " << steps;
      if (p.is_chunk()) {
        EXPECT_EQ(p.layer_end, p.layer_begin + 1);
        EXPECT_EQ(p.token_begin, next_row[p.layer_begin]) << "chunks in order";
        EXPECT_GE(p.token_end - p.token_begin, kMinChunkTokens) << "step " << steps;
        if (p.token_end == p.num_tokens) {
          EXPECT_GE(p.token_end - p.token_begin, kMinLastChunkTokens) << "step " << steps;
        }
        next_row[p.layer_begin] = p.token_end;
        if (p.token_end == p.num_tokens) next_layer = p.layer_end;
      } else {
        next_layer = p.layer_end;
      }
      RunStep(s, kv, out);
    }
    EXPECT_TRUE(s.IsDecoding(2)) << row.prompt_tokens;
    EXPECT_EQ(steps, row.expected_steps) << row.max_step_ms << " ms, " << row.prompt_tokens;
  }
}

// The same prompt, not chunkable (an H2O policy, prompt logprobs), gets a
// whole layer a step past the budget: the progress rule.
TEST(StepBudgetTest, UnchunkableLayerOverTheBudgetStillProgresses) {
  FakeKv kv(1000000, kLayers);
  Scheduler s(Timed(50), kv);
  StartDecoding(s, kv, kWithAttention);
  s.Add({2, 0, 3000});
  EXPECT_EQ(PrefillBesideDecode(s, kv, 2, kWithAttention, 50, /*may_exceed=*/true),
            (Slices{{0, 1}, {1, 2}, {2, 3}, {3, 4}}));
}

// A budget too small for the smallest chunk still moves the prompt one
// kMinChunkTokens chunk a step, and the layer's last chunk keeps its
// kMinLastChunkTokens rows.
TEST(StepBudgetTest, TinyBudgetGetsTheSmallestChunk) {
  FakeKv kv(1000000, kLayers);
  // The decode (4 ms) is over the budget; prefills keep kMinPrefillShare of
  // it, 0.75 ms: under one layer pass.
  Scheduler s(Timed(1.5), kv);
  StartDecoding(s, kv, kWithAttention);
  NewRequest r{2, 0, 700};
  r.chunkable = true;
  s.Add(r);
  std::vector<std::pair<int32_t, int32_t>> rows;
  for (int step = 0; step < 5; ++step) {
    const SchedulerOutput out = s.Schedule(kWithAttention);
    ASSERT_EQ(out.prefills.size(), 1u);
    rows.emplace_back(out.prefills[0].token_begin, out.prefills[0].token_end);
    RunStep(s, kv, out);
  }
  // At row 128 a third 64-row chunk would leave 508 rows, under the last
  // chunk's 512, and a 60-row chunk is under the minimum: the rest goes at once.
  EXPECT_EQ(rows, (std::vector<std::pair<int32_t, int32_t>>{
                      {0, 64}, {64, 128}, {128, 700}, {0, 64}, {64, 128}}));
}

}  // namespace
}  // namespace restkv::scheduler
