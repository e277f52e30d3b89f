#include "engine/eviction/select.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "common/check.h"

namespace restkv::engine {
namespace {

// PyramidKV's fixed ratio between the smallest and the mean layer budget.
constexpr int32_t kPyramidBeta = 20;

}  // namespace

int32_t EffectiveWindow(int32_t budget, int32_t window) {
  RESTKV_CHECK(budget >= 1 && window >= 1) << budget << " " << window;
  if (budget > window) return window;
  if (budget < 4) return budget;
  return (budget / 2) & ~1;
}

void TopKIndices(const float* scores, int64_t num, int64_t k, std::vector<float>* scratch,
                 std::vector<int32_t>* out) {
  out->clear();
  k = std::clamp<int64_t>(k, 0, num);
  if (k == 0) return;
  out->reserve(k);
  if (k == num) {
    for (int64_t j = 0; j < num; ++j) out->push_back(static_cast<int32_t>(j));
    return;
  }
  auto value = [scores](int64_t j) { return std::isnan(scores[j]) ? -INFINITY : scores[j]; };
  if (scratch->size() < static_cast<size_t>(num)) scratch->resize(num);
  float* copy = scratch->data();
  for (int64_t j = 0; j < num; ++j) copy[j] = value(j);
  std::nth_element(copy, copy + (k - 1), copy + num, std::greater<float>());
  const float threshold = copy[k - 1];
  // Everything above the threshold is kept; equal scores fill the remaining
  // slots from the lowest index, so one scan in index order does both.
  int64_t above = 0;
  for (int64_t j = 0; j < num; ++j) above += value(j) > threshold;
  int64_t ties_left = k - above;
  for (int64_t j = 0; j < num; ++j) {
    const float s = value(j);
    if (s > threshold || (s == threshold && ties_left-- > 0)) {
      out->push_back(static_cast<int32_t>(j));
    }
  }
  RESTKV_CHECK_EQ(static_cast<int64_t>(out->size()), k);
}

void ReduceGroupScores(GqaReduce mode, const float* head_scores, int32_t group, int64_t head_stride,
                       int64_t num, float* out) {
  RESTKV_CHECK_GE(group, 1);
  std::copy(head_scores, head_scores + num, out);
  for (int32_t h = 1; h < group; ++h) {
    const float* s = head_scores + h * head_stride;
    if (mode == GqaReduce::kMax) {
      for (int64_t j = 0; j < num; ++j) out[j] = std::max(out[j], s[j]);
    } else {
      for (int64_t j = 0; j < num; ++j) out[j] += s[j];
    }
  }
  if (mode == GqaReduce::kMean && group > 1) {
    const float inv = 1.0f / static_cast<float>(group);
    for (int64_t j = 0; j < num; ++j) out[j] *= inv;
  }
}

std::vector<int32_t> KeepTopCandidates(const float* scores, int32_t num_tokens, int32_t window,
                                       int32_t keep_candidates, std::vector<float>* scratch) {
  RESTKV_CHECK(window >= 0 && window <= num_tokens) << window << " " << num_tokens;
  const int32_t num_candidates = num_tokens - window;
  RESTKV_CHECK(keep_candidates >= 0 && keep_candidates <= num_candidates)
      << keep_candidates << " of " << num_candidates;
  std::vector<int32_t> keep;
  TopKIndices(scores, num_candidates, keep_candidates, scratch, &keep);
  keep.reserve(keep_candidates + window);
  for (int32_t j = num_candidates; j < num_tokens; ++j) keep.push_back(j);
  return keep;
}

std::vector<int32_t> StreamingLlmKeep(int32_t num_tokens, int32_t budget, int32_t sink_tokens) {
  RESTKV_CHECK(budget >= 0 && sink_tokens >= 0) << budget << " " << sink_tokens;
  std::vector<int32_t> keep;
  if (budget >= num_tokens) {
    keep.resize(num_tokens);
    for (int32_t j = 0; j < num_tokens; ++j) keep[j] = j;
    return keep;
  }
  const int32_t sinks = budget > sink_tokens ? sink_tokens : budget / 2;
  keep.reserve(budget);
  for (int32_t j = 0; j < sinks; ++j) keep.push_back(j);
  for (int32_t j = num_tokens - (budget - sinks); j < num_tokens; ++j) keep.push_back(j);
  return keep;
}

int32_t PyramidCandidates(int32_t budget, int32_t window, int32_t num_tokens, int32_t layer,
                          int32_t num_layers) {
  RESTKV_CHECK(num_tokens > budget && budget > window && window >= 1)
      << num_tokens << " " << budget << " " << window;
  RESTKV_CHECK(layer >= 0 && layer < num_layers) << layer << " of " << num_layers;
  const int64_t base = budget - window;
  if (num_layers == 1) return static_cast<int32_t>(base);
  int64_t min_c = base / kPyramidBeta;
  int64_t max_c = 2 * base - min_c;
  if (max_c >= num_tokens - window) {
    max_c = num_tokens - window;
    min_c = 2 * base - max_c;
  }
  // N > B makes max_c >= min_c here, so step >= 0 and K_l stays in [0, N-w].
  const int64_t step = (max_c - min_c) / (num_layers - 1);
  return static_cast<int32_t>(max_c - layer * step);
}

}  // namespace restkv::engine
