#include "engine/eviction/lacache.h"

#include <algorithm>
#include <numeric>

#include "common/check.h"

namespace restkv::engine {
namespace {

int32_t CeilDiv(int32_t a, int32_t b) { return (a + b - 1) / b; }

struct Clamped {
  int32_t sink;
  int32_t recent;
};

// Sinks as StreamingLLM takes them (B/2 when B <= sink), then as much of the
// recent band as the budget leaves.
Clamped ClampToBudget(const LadderShape& shape, int32_t budget) {
  const int32_t sink = budget > shape.sink ? shape.sink : budget / 2;
  return {sink, std::clamp(shape.recent, 0, budget - sink)};
}

// One ladder pass over a list of `len` entries: how many groups it
// compacts (0 = no pass possible). Shared by the count and the lists so
// that both follow the same passes.
int32_t GroupsThisPass(int32_t len, int32_t budget, Clamped c, int32_t group, int32_t saved) {
  const int32_t middle = len - c.sink - c.recent;
  const int32_t fit = middle > 0 ? middle / group : 0;
  return std::min(CeilDiv(len - budget, saved), fit);
}

}  // namespace

int32_t LadderGroup(const LadderShape& shape, int32_t num_layers) {
  RESTKV_CHECK(shape.overlap >= 0 && shape.overlap < shape.span && num_layers >= 1);
  const int32_t step = shape.span - shape.overlap;
  return 1 + std::max(0, CeilDiv(num_layers - shape.span, step));
}

int32_t LadderPerLayer(const LadderShape& shape, int32_t num_layers) {
  const int32_t step = shape.span - shape.overlap;
  return std::min(CeilDiv(shape.span, step), LadderGroup(shape, num_layers));
}

std::vector<int32_t> LaCacheKeep(int32_t num_tokens, int32_t budget, const LadderShape& shape,
                                 int32_t layer, int32_t num_layers) {
  RESTKV_CHECK(budget >= 1 && layer >= 0 && layer < num_layers);
  std::vector<int32_t> list(num_tokens);
  std::iota(list.begin(), list.end(), 0);
  if (num_tokens <= budget) return list;
  const Clamped c = ClampToBudget(shape, budget);
  const int32_t group = LadderGroup(shape, num_layers);
  const int32_t per_layer = LadderPerLayer(shape, num_layers);
  const int32_t saved = group - per_layer;
  const int32_t offset = saved > 0 ? layer % (saved + 1) : 0;
  std::vector<int32_t> next;
  while (saved > 0 && static_cast<int32_t>(list.size()) > budget) {
    const int32_t len = static_cast<int32_t>(list.size());
    const int32_t groups = GroupsThisPass(len, budget, c, group, saved);
    if (groups == 0) break;
    next.assign(list.begin(), list.begin() + c.sink);
    for (int32_t g = 0; g < groups; ++g) {
      const int32_t first = c.sink + g * group + offset;
      next.insert(next.end(), list.begin() + first, list.begin() + first + per_layer);
    }
    next.insert(next.end(), list.begin() + c.sink + groups * group, list.end());
    list.swap(next);
  }
  if (static_cast<int32_t>(list.size()) > budget) {
    // No pass can save more: the sinks and the newest entries.
    next.assign(list.begin(), list.begin() + c.sink);
    next.insert(next.end(), list.end() - (budget - c.sink), list.end());
    list.swap(next);
  }
  return list;
}

int32_t LaCacheKeptCount(int32_t num_tokens, int32_t budget, const LadderShape& shape,
                         int32_t num_layers) {
  RESTKV_CHECK(budget >= 1);
  if (num_tokens <= budget) return num_tokens;
  const Clamped c = ClampToBudget(shape, budget);
  const int32_t group = LadderGroup(shape, num_layers);
  const int32_t saved = group - LadderPerLayer(shape, num_layers);
  int32_t len = num_tokens;
  while (saved > 0 && len > budget) {
    const int32_t groups = GroupsThisPass(len, budget, c, group, saved);
    if (groups == 0) break;
    len -= groups * saved;
  }
  return std::min(len, budget);
}

}  // namespace restkv::engine
