#include "scheduler/scheduler.h"

#include "gtest/gtest.h"
#include "scheduler/testing/fake_kv_allocator.h"

namespace restkv::scheduler {
namespace {

using FakeKv = FakeKvAllocator;

// One engine step as far as the KV cache sees it: the slices' pages are taken
// (the forward pass in production), then the scheduler counts the progress.
void RunStep(Scheduler& s, FakeKv& kv, const SchedulerOutput& out) {
  for (const PrefillSlice& p : out.prefills) {
    ASSERT_TRUE(kv.RunPrefill(p.id, p.num_tokens, p.layer_begin, p.layer_end, p.prefix_tokens))
        << "the scheduler promised pages the pool does not have, request " << p.id;
  }
  s.Update(out);
}

TEST(SchedulerTest, CachedPrefixIsMappedAtAdmissionAndOnlyTheRestPrefills) {
  FakeKv kv(100, 2, 16);
  Scheduler s({.num_layers = 2, .max_num_seqs = 8, .max_num_batched_tokens = 64}, kv);
  kv.set_cached_prefix(1, 48);  // 3 blocks cached
  kv.set_cached_prefix(2, 64);  // a whole 64-token prompt: the last block is computed
  s.Add({1, 0, 50});
  s.Add({2, 0, 64});
  SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.prefills.size(), 2u);
  EXPECT_EQ(out.prefills[0].token_begin, 48);
  EXPECT_EQ(out.prefills[0].prefix_tokens, 48);
  EXPECT_EQ(out.prefills[0].token_end, 50);
  EXPECT_FALSE(out.prefills[0].is_chunk()) << "all layers from the prefix is a whole prefill";
  EXPECT_EQ(out.prefills[1].token_begin, 48);
  EXPECT_EQ(out.prefills[1].layer_end, 2);
  // 2 + 16 new rows on 2 layers: the 64-token budget (128 token-layers) holds both.
  EXPECT_EQ(out.prefill_token_layers, (2 + 16) * 2);
  EXPECT_EQ(kv.PagesHeld(1), 2 * 3) << "the mapped blocks are held at admission";
  RunStep(s, kv, out);
  EXPECT_EQ(kv.PagesHeld(1), 2 * 4);
  EXPECT_TRUE(s.IsDecoding(1));
  EXPECT_TRUE(s.IsDecoding(2));
  EXPECT_EQ(s.NumCachedTokens(1), 50);
}

TEST(SchedulerTest, ShortPromptsPrefillTogetherThenDecode) {
  FakeKv kv(100, 2);
  Scheduler s({.num_layers = 2, .max_num_seqs = 8, .max_num_batched_tokens = 64}, kv);
  s.Add({1, 0, 10});
  s.Add({2, 0, 20});
  SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.prefills.size(), 2u);
  EXPECT_EQ(out.prefills[0].layer_end, 2);
  EXPECT_EQ(out.prefills[1].layer_end, 2);
  EXPECT_TRUE(out.decodes.empty());
  RunStep(s, kv, out);
  out = s.Schedule();
  EXPECT_EQ(out.decodes, (std::vector<RequestId>{1, 2}));
  EXPECT_EQ(s.NumOutputTokens(1), 1);
  RunStep(s, kv, out);
  EXPECT_EQ(s.NumOutputTokens(1), 2);
  s.Remove(1);
  s.Remove(2);
  EXPECT_EQ(kv.used(), 0);
}

TEST(SchedulerTest, MaxNumSeqsLimitsRunning) {
  FakeKv kv(1000, 1);
  Scheduler s({.num_layers = 1, .max_num_seqs = 3, .max_num_batched_tokens = 1000}, kv);
  for (RequestId id = 1; id <= 5; ++id) s.Add({id, 0, 4});
  SchedulerOutput out = s.Schedule();
  EXPECT_EQ(out.prefills.size(), 3u);
  EXPECT_EQ(s.num_running(), 3);
  EXPECT_EQ(s.num_waiting(), 2);
}

// A long prompt is prefilled a few layers per step while a decoding request
// keeps producing a token every step.
TEST(SchedulerTest, PrefillSlicingInterleavesDecodes) {
  const int L = 8;
  FakeKv kv(10000, L);
  Scheduler s({.num_layers = L, .max_num_seqs = 8, .max_num_batched_tokens = 300}, kv);
  s.Add({1, 0, 5});
  SchedulerOutput out = s.Schedule();
  RunStep(s, kv, out);
  s.Add({2, 0, 1000});  // 8000 token-layers; budget 2400 per step
  std::vector<std::pair<int, int>> slices;
  for (int step = 0; step < 10 && !s.IsDecoding(2); ++step) {
    out = s.Schedule();
    EXPECT_EQ(out.decodes, std::vector<RequestId>{1}) << "step " << step;
    ASSERT_EQ(out.prefills.size(), 1u) << "step " << step;
    slices.emplace_back(out.prefills[0].layer_begin, out.prefills[0].layer_end);
    EXPECT_LE(out.token_layers, 300 * L) << "step " << step;
    RunStep(s, kv, out);
  }
  // (2400 - 8) / 1000 = 2 layers per step.
  EXPECT_EQ(slices, (std::vector<std::pair<int, int>>{{0, 2}, {2, 4}, {4, 6}, {6, 8}}));
  EXPECT_TRUE(s.IsDecoding(2));
}

TEST(SchedulerTest, PrefillProgressesEvenWhenOneLayerExceedsTheBudget) {
  FakeKv kv(10000, 4);
  Scheduler s({.num_layers = 4, .max_num_seqs = 8, .max_num_batched_tokens = 16}, kv);
  s.Add({1, 0, 100});
  SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.prefills.size(), 1u);
  EXPECT_EQ(out.prefills[0].layer_end, 1);
}

TEST(SchedulerTest, AdmissionWaitsForFreePagesAndKeepsOrder) {
  FakeKv kv(10, 2);  // 10 pages, 2 layers
  Scheduler s({.num_layers = 2, .max_num_seqs = 8, .max_num_batched_tokens = 1000}, kv);
  s.Add({1, 0, 64});  // 2 x 4 = 8 pages
  s.Add({2, 0, 32});  // 4 pages: does not fit beside 1
  s.Add({3, 0, 1});   // 2 pages would fit, but may not jump the queue
  SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.prefills.size(), 1u);
  EXPECT_EQ(out.prefills[0].id, 1);
  RunStep(s, kv, out);
  s.Remove(1);
  out = s.Schedule();
  ASSERT_EQ(out.prefills.size(), 2u);
  EXPECT_EQ(out.prefills[0].id, 2);
  EXPECT_EQ(out.prefills[1].id, 3);
}

TEST(SchedulerTest, PriorityThenArrivalOrder) {
  FakeKv kv(1000, 1);
  Scheduler s({.num_layers = 1, .max_num_seqs = 2, .max_num_batched_tokens = 1000}, kv);
  s.Add({1, 5, 4});
  s.Add({2, 0, 4});
  s.Add({3, 0, 4});
  s.Add({4, -1, 4});
  SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.prefills.size(), 2u);
  EXPECT_EQ(out.prefills[0].id, 4);
  EXPECT_EQ(out.prefills[1].id, 2);
}

// Admitted prefills keep the pages they will need: a decode cannot take them.
TEST(SchedulerTest, ReservedPagesProtectAdmittedPrefill) {
  FakeKv kv(12, 4);
  Scheduler s({.num_layers = 4, .max_num_seqs = 8, .max_num_batched_tokens = 10}, kv);
  s.Add({1, 0, 40});  // 4 layers x 3 pages = 12 pages; budget 40 token-layers = 1 layer a step
  SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.prefills.size(), 1u);
  EXPECT_EQ(out.prefills[0].layer_end, 1);
  EXPECT_EQ(s.ReservedPages(), 12) << "nothing is taken before the slice runs";
  RunStep(s, kv, out);
  EXPECT_EQ(s.ReservedPages(), 9);
  for (int step = 0; step < 3; ++step) {
    out = s.Schedule();
    ASSERT_EQ(out.prefills.size(), 1u) << "step " << step;
    RunStep(s, kv, out);
  }
  EXPECT_TRUE(s.IsDecoding(1));
  EXPECT_EQ(kv.NumFreePages(), 0);
}

// Table-driven: two requests decode in a pool that runs dry; the later one
// is preempted, then recomputed (prompt + its output) once pages return.
TEST(SchedulerTest, PreemptsLowestPriorityWhenDecodeRunsDry) {
  FakeKv kv(6, 1, /*block=*/4);  // 6 pages of 4 slots, 1 layer
  Scheduler s({.num_layers = 1, .max_num_seqs = 4, .max_num_batched_tokens = 100}, kv);
  s.Add({1, 0, 8});  // 2 pages
  s.Add({2, 0, 8});  // 2 pages
  struct Expected {
    int step;
    std::vector<RequestId> decodes;
    std::vector<RequestId> preempted;
    int prefills;
  };
  const std::vector<Expected> table = {
      {0, {}, {}, 2},      // both prefill 8 tokens: 4 pages used
      {1, {1, 2}, {}, 0},  // token 9 each: 1 page each -> 6 used
      {2, {1, 2}, {}, 0},  // tokens 10
      {3, {1, 2}, {}, 0},  // tokens 11
      {4, {1, 2}, {}, 0},  // tokens 12
      {5, {1}, {2}, 0},    // token 13 for 1 needs a page: 2 is preempted
      {6, {1}, {}, 0},
  };
  for (const Expected& row : table) {
    SchedulerOutput out = s.Schedule();
    EXPECT_EQ(out.decodes, row.decodes) << "step " << row.step;
    EXPECT_EQ(out.preempted, row.preempted) << "step " << row.step;
    EXPECT_EQ(static_cast<int>(out.prefills.size()), row.prefills) << "step " << row.step;
    RunStep(s, kv, out);
  }
  EXPECT_EQ(s.num_preemptions(), 1);
  EXPECT_EQ(s.NumOutputTokens(2), 5);
  s.Remove(1);
  SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.prefills.size(), 1u);
  EXPECT_EQ(out.prefills[0].id, 2);
  EXPECT_EQ(out.prefills[0].num_tokens, 13);  // prompt 8 + 5 generated
  RunStep(s, kv, out);
  EXPECT_EQ(s.NumOutputTokens(2), 6);
  s.Remove(2);
  EXPECT_EQ(kv.used(), 0);
}

// Preemption returns pages through Release (the allocator keeps the
// request's policy); only Remove forgets it.
TEST(SchedulerTest, PreemptionReleasesAndRemoveFrees) {
  FakeKv kv(6, 1, /*block=*/4);
  Scheduler s({.num_layers = 1, .max_num_seqs = 4, .max_num_batched_tokens = 100}, kv);
  s.Add({1, 0, 8});
  s.Add({2, 0, 8});
  for (int step = 0; step < 6; ++step) RunStep(s, kv, s.Schedule());
  EXPECT_EQ(s.num_preemptions(), 1);
  EXPECT_EQ(kv.releases(), 1);
  EXPECT_EQ(kv.frees(), 0);
  s.Remove(1);
  s.Remove(2);
  EXPECT_EQ(kv.frees(), 2);
  EXPECT_EQ(kv.used(), 0);
}

// With replay_output_on_recompute the recompute prefills the prompt alone and
// then feeds the known output back through decodes that produce nothing new.
TEST(SchedulerTest, RecomputeReplaysOutputAfterPromptOnlyPrefill) {
  FakeKv kv(6, 1, /*block=*/4);
  Scheduler s({.num_layers = 1, .max_num_seqs = 4, .max_num_batched_tokens = 100}, kv);
  s.Add({1, 0, 8});
  s.Add({2, 0, 8, /*replay_output_on_recompute=*/true});
  for (int step = 0; step < 6; ++step) RunStep(s, kv, s.Schedule());  // as the test above
  ASSERT_EQ(s.num_preemptions(), 1);
  ASSERT_EQ(s.NumOutputTokens(2), 5);
  s.Remove(1);
  SchedulerOutput out = s.Schedule();
  ASSERT_EQ(out.prefills.size(), 1u);
  EXPECT_EQ(out.prefills[0].num_tokens, 8);  // the prompt only
  EXPECT_EQ(s.NumCachedTokens(2), 8);
  RunStep(s, kv, out);
  EXPECT_EQ(s.NumOutputTokens(2), 5) << "the prefill re-derives token 1, which is known";
  // Outputs 1..4 are fed back at positions 8..11, then output 5 at 12 samples.
  for (int32_t pos = 8; pos <= 12; ++pos) {
    EXPECT_EQ(s.NumCachedTokens(2), pos);
    out = s.Schedule();
    ASSERT_EQ(out.decodes, (std::vector<RequestId>{2})) << pos;
    RunStep(s, kv, out);
    EXPECT_EQ(s.NumOutputTokens(2), pos < 12 ? 5 : 6) << pos;
  }
  s.Remove(2);
  EXPECT_EQ(kv.used(), 0);
}

// A head that cannot fit the pool even with nothing running is reported,
// not left to wait forever; one that only waits for a running request is not.
TEST(SchedulerTest, HeadThatCanNeverFitIsReportedUnschedulable) {
  FakeKv kv(4, 1, /*block=*/4);
  Scheduler s({.num_layers = 1, .max_num_seqs = 4, .max_num_batched_tokens = 100}, kv);
  s.Add({1, 0, 12});  // 3 of 4 pages
  s.Add({2, 0, 8});   // 2 pages: waits for 1
  SchedulerOutput out = s.Schedule();
  EXPECT_EQ(out.prefills.size(), 1u);
  EXPECT_TRUE(out.unschedulable.empty());
  RunStep(s, kv, out);
  s.Remove(1);
  s.Add({3, -1, 20});  // 5 pages, and first in order
  out = s.Schedule();
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(out.unschedulable, (std::vector<RequestId>{3}));
  s.Remove(3);
  out = s.Schedule();
  ASSERT_EQ(out.prefills.size(), 1u);
  EXPECT_EQ(out.prefills[0].id, 2);
  EXPECT_TRUE(out.unschedulable.empty());
  s.Remove(2);
  EXPECT_EQ(kv.used(), 0);
}

}  // namespace
}  // namespace restkv::scheduler
