#include "engine/eviction/adakv.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <tuple>

#include "common/check.h"

namespace restkv::engine {

std::vector<int32_t> AdaKvCounts(const float* scores, int32_t heads, int64_t stride,
                                 int32_t num_candidates, int32_t b, bool normalize, int32_t cap) {
  RESTKV_CHECK(heads >= 1 && b >= 0 && num_candidates >= 0);
  const int32_t m = num_candidates;
  struct Entry {
    float value;
    int32_t head;
    int32_t rank;
  };
  std::vector<Entry> pooled;
  pooled.reserve(static_cast<size_t>(heads) * m);
  std::vector<float> sorted(m);
  for (int32_t h = 0; h < heads; ++h) {
    const float* s = scores + h * stride;
    // NaN ranks lowest, as in TopKIndices.
    std::transform(s, s + m, sorted.begin(), [](float x) {
      return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x;
    });
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    double rho = 1.0;
    if (normalize) {
      double top = 0, all = 0;
      for (int32_t j = 0; j < m; ++j) {
        all += sorted[j];
        if (j < b) top += sorted[j];
      }
      rho = all > 0 ? top / all : 1.0;
    }
    for (int32_t j = 0; j < m; ++j) {
      pooled.push_back({static_cast<float>(sorted[j] * rho), h, j});
    }
  }
  const int64_t take = std::min<int64_t>(static_cast<int64_t>(heads) * b, pooled.size());
  auto before = [](const Entry& x, const Entry& y) {
    if (x.value != y.value) return x.value > y.value;
    return std::tie(x.head, x.rank) < std::tie(y.head, y.rank);
  };
  std::nth_element(pooled.begin(), pooled.begin() + take, pooled.end(), before);
  std::vector<int32_t> counts(heads, 0);
  for (int64_t i = 0; i < take; ++i) ++counts[pooled[i].head];
  const int32_t floor_c = static_cast<int32_t>(b * 0.2);
  const int32_t limit = std::min(m, cap);
  for (int32_t& c : counts) {
    c = std::clamp(static_cast<int32_t>(std::lround(c * 0.8 + floor_c)), 0, limit);
  }
  return counts;
}

}  // namespace restkv::engine
