// Test-only: seeded normal random vectors for the CPU kernel tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace restkv::kernels::testing {

inline std::vector<float> RandomVector(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace restkv::kernels::testing
