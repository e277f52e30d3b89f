// How alike two eviction selections are: the Jaccard similarity |A ∩ B| /
// |A ∪ B| of the kept positions, per KV head and averaged over (layer,
// head). The parity figure between backends (CPU against CUDA, a KV dtype
// against f32): 1 when both keep the same tokens.
#pragma once

#include <cstdint>
#include <vector>

namespace restkv::engine {

// One head's lists, each ascending (as SelectTokens returns them); 1 when
// both are empty.
double Jaccard(const std::vector<int32_t>& a, const std::vector<int32_t>& b);

// kept[layer][kv_head] (EvictionReport::kept): the mean over the (layer,
// head) pairs both hold; 0 when there are none.
double MeanJaccard(const std::vector<std::vector<std::vector<int32_t>>>& a,
                   const std::vector<std::vector<std::vector<int32_t>>>& b);

}  // namespace restkv::engine
