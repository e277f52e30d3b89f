#include "engine/kv/random_kv_fill.h"

#include <algorithm>
#include <random>
#include <vector>

#include "absl/strings/str_format.h"

namespace restkv::engine {
namespace {

// Rows uploaded once and stored over and over: large enough that a decode
// step does not read one page's values everywhere, small enough to upload in
// milliseconds.
constexpr int32_t kChunkTokens = 512;

}  // namespace

absl::Status FillWithRandomKv(kernels::Backend& backend, SequenceKv& kv,
                              const KvPolicyConfig& policy, int32_t num_tokens, uint32_t seed) {
  if (num_tokens < 0) return absl::InvalidArgumentError("FillWithRandomKv: negative length");
  if (kv.num_pages() > 0) return absl::InvalidArgumentError("FillWithRandomKv: sequence not empty");
  const kernels::KvPageLayout layout = kv.layout();
  const int32_t num_layers = kv.num_layers();
  const int64_t width = int64_t{layout.kv_heads} * layout.head_dim;

  // Unit-variance K/V (what RMS-normed projections give), one chunk.
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> host(static_cast<size_t>(2 * kChunkTokens * width));
  for (float& x : host) x = normal(rng);
  auto chunk = backend.Allocate(host.size() * sizeof(float));
  if (!chunk.ok()) return chunk.status();
  backend.CopyFromHost(host.data(), (*chunk)->floats(), host.size());
  const float* k = (*chunk)->floats();
  const float* v = k + kChunkTokens * width;

  std::vector<kernels::KvSlot> slots;
  for (int32_t l = 0; l < num_layers; ++l) {
    const int32_t kept = KeptTokensForLayer(policy, l, num_layers, num_tokens);
    if (!kv.ReserveLayers(l, l + 1, kept)) {
      kv.Release();
      return absl::ResourceExhaustedError(
          absl::StrFormat("FillWithRandomKv: the pool has too few free pages for %d tokens under "
                          "this policy (layer %d of %d)",
                          num_tokens, l, num_layers));
    }
    const std::vector<float*>& pages = kv.page_ptrs()[l];
    for (int32_t begin = 0; begin < kept; begin += kChunkTokens) {
      const int32_t m = std::min(kChunkTokens, kept - begin);
      slots.resize(static_cast<size_t>(m));
      for (int32_t t = 0; t < m; ++t) {
        const int32_t slot = begin + t;
        slots[t] = {pages[slot / layout.block_size], slot % layout.block_size};
      }
      backend.StoreKv(k, v, slots.data(), m, layout);
    }
    kv.CommitLayers(l, l + 1, kept);
  }
  // `chunk` is freed on return; a device backend's free waits for the
  // queued stores (cudaFree synchronises).
  return backend.status();
}

}  // namespace restkv::engine
