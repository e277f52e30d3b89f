#include "scheduler/step_cost_model.h"

#include <random>

#include "gtest/gtest.h"

namespace restkv::scheduler {
namespace {

// Steps of the kinds the engine runs: decode batches at growing contexts,
// short prompts, layer slices of long prompts.
StepWork RandomStep(std::mt19937& rng) {
  std::uniform_int_distribution<int> kind(0, 2), tokens(1, 4000), rows(1, 16), layers(1, 30);
  switch (kind(rng)) {
    case 0: {  // decodes
      const int64_t n = rows(rng), ctx = tokens(rng);
      return {30, n * 30, n * (ctx + 1) * 30};
    }
    case 1: {  // a short prompt with decodes
      const int64_t n = rows(rng) * 16;
      return {30, n * 30, CausalPairs(0, n) * 30};
    }
    default: {  // a layer slice of a long prompt
      const int64_t n = tokens(rng), l = layers(rng);
      return {l, n * l, CausalPairs(0, n) * l};
    }
  }
}

constexpr StepCost kPrior{0.2, 0.002, 1e-6};

TEST(StepCostModelTest, StartsFromThePrior) {
  StepCostModel m({.prior = kPrior});
  EXPECT_EQ(m.cost().ms_per_token_layer, kPrior.ms_per_token_layer);
  m.Observe({}, 10);        // no work
  m.Observe({1, 1, 1}, 0);  // no time
  EXPECT_EQ(m.num_observations(), 0);
}

TEST(StepCostModelTest, FitsTheTruePricesOfMixedSteps) {
  const StepCost truth{0.05, 0.004, 3e-7};
  StepCostModel m({.prior = kPrior});
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    const StepWork w = RandomStep(rng);
    m.Observe(w, truth.Ms(w));
  }
  EXPECT_NEAR(m.cost().ms_per_layer_pass, truth.ms_per_layer_pass, 0.05 * truth.ms_per_layer_pass);
  EXPECT_NEAR(m.cost().ms_per_token_layer, truth.ms_per_token_layer,
              0.05 * truth.ms_per_token_layer);
  EXPECT_NEAR(m.cost().ms_per_attention_pair, truth.ms_per_attention_pair,
              0.05 * truth.ms_per_attention_pair);
  // And so predicts an unseen long-context slice.
  const StepWork slice{2, 7000 * 2, CausalPairs(0, 7000) * 2};
  EXPECT_NEAR(m.cost().Ms(slice), truth.Ms(slice), 0.03 * truth.Ms(slice));
}

// The machine slows down (other load): the fit follows within a few memory
// lengths (here 1 s of steps; the random steps average ~40 ms).
TEST(StepCostModelTest, FollowsAChangeOfSpeed) {
  const StepCost fast{0.05, 0.004, 3e-7};
  const StepCost slow{0.1, 0.008, 6e-7};
  StepCostModel m({.prior = kPrior, .memory_ms = 1000});
  std::mt19937 rng(3);
  for (int i = 0; i < 200; ++i) {
    const StepWork w = RandomStep(rng);
    m.Observe(w, fast.Ms(w));
  }
  const StepWork probe{4, 4 * 3000, CausalPairs(0, 3000) * 4};
  EXPECT_NEAR(m.cost().Ms(probe), fast.Ms(probe), 0.05 * fast.Ms(probe));
  for (int i = 0; i < 150; ++i) {
    const StepWork w = RandomStep(rng);
    m.Observe(w, slow.Ms(w));
  }
  EXPECT_NEAR(m.cost().Ms(probe), slow.Ms(probe), 0.05 * slow.Ms(probe));
}

// Steps that never vary a term leave its price at the prior; the others fit.
TEST(StepCostModelTest, KeepsThePriorOfATermTheDataDoesNotSeparate) {
  StepCostModel m({.prior = kPrior});
  for (int n = 1; n <= 64; ++n) {
    // Decodes at context 0: attention pairs = token-layers, always.
    const StepWork w{30, n * 30, n * 30};
    m.Observe(w, 3.0 + 0.01 * n * 30);
  }
  // The steps it saw are predicted well (n = 1 least: the regulariser pulls
  // a little)...
  for (int n : {1, 16, 64}) {
    const double truth = 3.0 + 0.01 * n * 30;
    EXPECT_NEAR(m.cost().Ms({30, n * 30, n * 30}), truth, 0.15 * truth) << n;
  }
  // ...and since token-layers and attention pairs moved together, the fit
  // put the cost on the token-layer (the prior's attention price is tiny)
  // rather than on attention, which would misprice long prompts.
  EXPECT_NEAR(m.cost().ms_per_attention_pair, kPrior.ms_per_attention_pair,
              0.5 * kPrior.ms_per_attention_pair);
}

// Timings that a negative price would fit best (noise, or a term that costs
// nothing here) give a price of zero, never below.
TEST(StepCostModelTest, PricesNeverGoNegative) {
  StepCostModel m({.prior = kPrior, .prior_weight = 0.01});
  std::mt19937 rng(11);
  for (int i = 0; i < 200; ++i) {
    const StepWork w = RandomStep(rng);
    // More passes make the step faster: only a negative pass price fits.
    m.Observe(w, std::max(0.1, 0.004 * w.token_layers - 0.05 * w.layer_passes));
  }
  EXPECT_GE(m.cost().ms_per_layer_pass, 0);
  EXPECT_GE(m.cost().ms_per_token_layer, 0);
  EXPECT_GE(m.cost().ms_per_attention_pair, 0);
  EXPECT_EQ(m.cost().ms_per_layer_pass, 0);
}

}  // namespace
}  // namespace restkv::scheduler
