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

int64_t KvPageMath::MaxConcurrent(const KvPolicyConfig& policy, int32_t num_tokens,
                                  int32_t decode_tokens, int64_t total_pages) const {
  const int64_t held = PagesAfterDecode(policy, num_tokens, decode_tokens);
  const int64_t peak = std::max(PrefillPeakPages(policy, num_tokens), held);
  if (total_pages < peak) return 0;
  return (total_pages - peak) / held + 1;
}

}  // namespace restkv::engine
