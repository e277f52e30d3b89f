#include "engine/eviction/kept_overlap.h"

#include <algorithm>
#include <iterator>

namespace restkv::engine {

double Jaccard(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  std::vector<int32_t> both, either;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(either));
  return either.empty() ? 1.0
                        : static_cast<double>(both.size()) / static_cast<double>(either.size());
}

double MeanJaccard(const std::vector<std::vector<std::vector<int32_t>>>& a,
                   const std::vector<std::vector<std::vector<int32_t>>>& b) {
  double sum = 0;
  int64_t n = 0;
  for (size_t l = 0; l < a.size() && l < b.size(); ++l) {
    for (size_t h = 0; h < a[l].size() && h < b[l].size(); ++h) {
      sum += Jaccard(a[l][h], b[l][h]);
      ++n;
    }
  }
  return n == 0 ? 0.0 : sum / static_cast<double>(n);
}

}  // namespace restkv::engine
