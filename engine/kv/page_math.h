// KV page arithmetic for one request under an eviction policy: the single
// source of truth used by admission (KvCacheManager), `restkv plan` and the
// memory tests.
//
// With eviction during prefill, layer l is computed on all N prompt tokens
// (ceil(N / block) pages), then cut to its kept count K_l before layer l+1
// starts. While layer l runs the request therefore holds
//   sum_{j<l} ceil(K_j / block) + ceil(N / block)      pages,
// and after prefill sum_j ceil(K_j / block). Without eviction K_j = N.
#pragma once

#include <cstdint>

#include "engine/eviction/policy_config.h"

namespace restkv::engine {

struct KvPageMath {
  int32_t num_layers = 1;
  int32_t block_size = 16;

  [[nodiscard]] int64_t PagesFor(int64_t tokens) const {
    return (tokens + block_size - 1) / block_size;
  }
  // Most pages held at once while prefilling num_tokens tokens.
  [[nodiscard]] int64_t PrefillPeakPages(const KvPolicyConfig& policy, int32_t num_tokens) const;
  // Pages held right after prefill.
  [[nodiscard]] int64_t PagesAfterPrefill(const KvPolicyConfig& policy, int32_t num_tokens) const;
  // Pages held after prefill plus `decode_tokens` generated tokens.
  [[nodiscard]] int64_t PagesAfterDecode(const KvPolicyConfig& policy, int32_t num_tokens,
                                         int32_t decode_tokens) const;
  // How many such requests the scheduler can hold at once in `total_pages`:
  // the last one admitted needs its prefill peak free while the others hold
  // their post-decode footprint.
  //
  // With `shared_prefix_tokens` > 0 every request's prompt starts with the
  // same that many tokens, held once in the prefix cache (kv_cache_manager.h)
  // by requests whose policy does not evict: each request holds only its own
  // pages beyond the shared full blocks (at most those before its last
  // prompt token, which is always computed).
  [[nodiscard]] int64_t MaxConcurrent(const KvPolicyConfig& policy, int32_t num_tokens,
                                      int32_t decode_tokens, int64_t total_pages,
                                      int32_t shared_prefix_tokens = 0) const;
  // Pages a request maps from the prefix cache when its first
  // `shared_prefix_tokens` tokens are cached (0 under an evicting policy).
  [[nodiscard]] int64_t SharedPrefixPages(const KvPolicyConfig& policy, int32_t num_tokens,
                                          int32_t shared_prefix_tokens) const;
};

}  // namespace restkv::engine
