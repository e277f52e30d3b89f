// AdaKV's head-wise budget allocation inside one layer (spec §3, worked case
// §7.7): the layer's candidate budget H*b is shared between its heads by how
// concentrated each head's scores are, instead of b per head.
//
//   1. sort each head's candidate scores descending; with `normalize`,
//      scale head h's by rho_h = (sum of its top b) / (sum of all);
//   2. pool every head's scaled sorted scores and take the top H*b: c'_h of
//      them come from head h;
//   3. c_h = round(0.8 c'_h + floor(0.2 b)) (a floor for every head), then
//      clamped to [0, min(M, cap)].
// Head h then keeps its own top c_h candidates plus the window.
//
// Here the heads are the layer's KV heads (this cache stores Hkv heads; the
// G query-head scores of a KV head are reduced first, as for every policy),
// and `cap` bounds a head's count so that the layer's padded length has a
// bound known before prefill (admission; see KeptTokensForLayer).
// Ties in the pooled ranking go to the lower head, then the higher score
// rank. Pure function.
#pragma once

#include <cstdint>
#include <vector>

namespace restkv::engine {

// scores [heads][stride], candidates 0..num_candidates-1 of each head.
// Returns c_h per head. REQUIRES: heads >= 1, 0 <= b, num_candidates >= 0.
std::vector<int32_t> AdaKvCounts(const float* scores, int32_t heads, int64_t stride,
                                 int32_t num_candidates, int32_t b, bool normalize, int32_t cap);

}  // namespace restkv::engine
