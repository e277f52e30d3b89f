#include "bench/arrivals.h"

#include <algorithm>
#include <cmath>

#include "gtest/gtest.h"

namespace restkv::bench {
namespace {

TEST(Arrivals, SameSeedSameScheduleOtherSeedOther) {
  ArrivalOptions o;
  o.rate = 4;
  o.seed = 42;
  const auto a = GenerateArrivals(o, 200, 0);
  const auto b = GenerateArrivals(o, 200, 0);
  ASSERT_EQ(a.size(), 200u);
  EXPECT_EQ(a, b);  // bit for bit
  o.seed = 43;
  EXPECT_NE(a, GenerateArrivals(o, 200, 0));
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_GT(a.front(), 0.0);
}

// Kolmogorov–Smirnov: the gaps of a Poisson process at rate r are
// exponential with mean 1/r. Not rescaled to a duration, so they are iid.
TEST(Arrivals, PoissonGapsPassKolmogorovSmirnov) {
  ArrivalOptions o;
  o.rate = 7.5;
  o.seed = 1;
  const int n = 5000;
  const auto t = GenerateArrivals(o, n, 0);
  std::vector<double> gaps;
  for (int i = 0; i < n; ++i) gaps.push_back(t[i] - (i == 0 ? 0.0 : t[i - 1]));
  std::sort(gaps.begin(), gaps.end());
  double d = 0;
  for (int i = 0; i < n; ++i) {
    const double cdf = 1 - std::exp(-o.rate * gaps[i]);
    d = std::max({d, cdf - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - cdf});
  }
  // Critical value at alpha = 0.001: 1.95 / sqrt(n).
  EXPECT_LT(d, 1.95 / std::sqrt(n)) << "KS statistic " << d;
  // And a clearly wrong rate is rejected by the same test (the test can fail).
  double d_wrong = 0;
  for (int i = 0; i < n; ++i) {
    const double cdf = 1 - std::exp(-o.rate * 1.2 * gaps[i]);
    d_wrong =
        std::max({d_wrong, cdf - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - cdf});
  }
  EXPECT_GT(d_wrong, 1.95 / std::sqrt(n));
}

TEST(Arrivals, GammaBurstinessKeepsTheMeanAndChangesTheSpread) {
  ArrivalOptions o;
  o.rate = 10;
  o.seed = 3;
  auto cv = [&](double burstiness, double* mean) {
    o.burstiness = burstiness;
    const auto t = GenerateArrivals(o, 20000, 0);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < t.size(); ++i) {
      const double g = t[i] - (i ? t[i - 1] : 0);
      s += g;
      s2 += g * g;
    }
    *mean = s / t.size();
    return std::sqrt(s2 / t.size() - *mean * *mean) / *mean;
  };
  double mean = 0;
  EXPECT_NEAR(cv(0.25, &mean), 2.0, 0.15);  // CV = 1/sqrt(k)
  EXPECT_NEAR(mean, 0.1, 0.01);
  EXPECT_NEAR(cv(4.0, &mean), 0.5, 0.05);
  EXPECT_NEAR(mean, 0.1, 0.005);
}

TEST(Arrivals, DurationBoundsTheSchedule) {
  ArrivalOptions o;
  o.rate = 20;
  const auto t = GenerateArrivals(o, 0, 10.0);
  EXPECT_LT(t.back(), 10.0);
  EXPECT_NEAR(static_cast<double>(t.size()), 200.0, 4 * std::sqrt(200.0));
  EXPECT_EQ(GenerateArrivals(o, 5, 10.0).size(), 5u);
}

TEST(Arrivals, InfiniteRateSendsAllAtOnce) {
  const auto t = GenerateArrivals({}, 4, 0);
  EXPECT_EQ(t, std::vector<double>(4, 0.0));
}

TEST(Arrivals, LinearRampIntegratesExactly) {
  ArrivalOptions o;
  o.rate = 10;
  o.ramp_up_s = 20;
  o.ramp_start_rate = 0;
  ASSERT_TRUE(ValidateArrivalOptions(o).ok());
  // Lambda(t) = 10 t^2 / 40 for t < 20: 100 arrivals due by t = 20.
  EXPECT_NEAR(InverseIntegratedRate(o, 100), 20.0, 1e-9);
  EXPECT_NEAR(InverseIntegratedRate(o, 25), 10.0, 1e-9);
  EXPECT_NEAR(InverseIntegratedRate(o, 150), 25.0, 1e-9);  // then 10/s
  o.ramp_start_rate = 2;
  // Lambda(t) = 2 t + 8 t^2 / 40; at t = 10: 20 + 20 = 40.
  EXPECT_NEAR(InverseIntegratedRate(o, 40), 10.0, 1e-9);
  // Fewer arrivals in the first half of the ramp than in the second.
  o.ramp_start_rate = 0;
  o.seed = 9;
  const auto t = GenerateArrivals(o, 0, 20);
  const auto first_half = std::count_if(t.begin(), t.end(), [](double x) { return x < 10; });
  EXPECT_NEAR(static_cast<double>(first_half), 25, 15);
  EXPECT_NEAR(static_cast<double>(t.size()), 100, 35);
}

TEST(Arrivals, Validation) {
  ArrivalOptions o;
  o.rate = 0;
  EXPECT_FALSE(ValidateArrivalOptions(o).ok());
  o.rate = 1;
  o.burstiness = 0;
  EXPECT_FALSE(ValidateArrivalOptions(o).ok());
  o.burstiness = 1;
  o.ramp_up_s = 5;
  o.ramp_start_rate = 3;
  EXPECT_FALSE(ValidateArrivalOptions(o).ok());
}

}  // namespace
}  // namespace restkv::bench
