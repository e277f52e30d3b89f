#include "engine/kv/page_math.h"

#include <algorithm>

namespace restkv::engine {

int64_t KvPageMath::PrefillPeakPages(const KvPolicyConfig& policy, int32_t num_tokens) const {
  int64_t done = 0, peak = 0;
  for (int32_t l = 0; l < num_layers; ++l) {
    peak = std::max(peak, done + PagesFor(num_tokens));
    done += PagesFor(KeptTokensForLayer(policy, l, num_layers, num_tokens));
  }
  return std::max(peak, done);
}

int64_t KvPageMath::PagesAfterPrefill(const KvPolicyConfig& policy, int32_t num_tokens) const {
  int64_t pages = 0;
  for (int32_t l = 0; l < num_layers; ++l) {
    pages += PagesFor(KeptTokensForLayer(policy, l, num_layers, num_tokens));
  }
  return pages;
}

int64_t KvPageMath::PagesAfterDecode(const KvPolicyConfig& policy, int32_t num_tokens,
                                     int32_t decode_tokens) const {
  int64_t pages = 0;
  for (int32_t l = 0; l < num_layers; ++l) {
    pages += PagesFor(KeptTokensForLayer(policy, l, num_layers, num_tokens) + decode_tokens);
  }
  return pages;
}

int64_t KvPageMath::SharedPrefixPages(const KvPolicyConfig& policy, int32_t num_tokens,
                                      int32_t shared_prefix_tokens) const {
  if (policy.kind != KvPolicyKind::kFull && policy.budget > 0) return 0;
  const int64_t blocks =
      std::min(std::max(0, shared_prefix_tokens), std::max(0, num_tokens - 1)) / block_size;
  return blocks * num_layers;
}

int64_t KvPageMath::MaxConcurrent(const KvPolicyConfig& policy, int32_t num_tokens,
                                  int32_t decode_tokens, int64_t total_pages,
                                  int32_t shared_prefix_tokens) const {
  const int64_t held = PagesAfterDecode(policy, num_tokens, decode_tokens);
  const int64_t peak = std::max(PrefillPeakPages(policy, num_tokens), held);
  if (total_pages < peak) return 0;
  // The shared pages are held once, by the first request; each other one
  // holds the rest of its footprint.
  const int64_t shared = SharedPrefixPages(policy, num_tokens, shared_prefix_tokens);
  return (total_pages - peak) / (held - shared) + 1;
}

}  // namespace restkv::engine
