// LayerEvictor: eviction during prefill for one (sequence, layer) — run the
// policy on the layer's freshly written K/V, move the kept tokens of every KV
// head to the front of the layer's pages, and give the emptied pages back to
// the pool before the next layer runs.
//
//   before:  pages[l] = [t0 t1 ... t(N-1)]               ceil(N / block) pages
//   after:   pages[l] = [head h: kept_h[0] .. kept_h[K-1]] ceil(K / block) pages
//
// Slot i of KV head h holds head h's i-th kept token (ascending positions);
// keys carry RoPE, so positions travel with them. Compaction is in place:
// kept indices ascend, so a slot is never overwritten before it is read.
//
// Where it runs:
// - A backend with eviction kernels (Backend::layer_eviction(), the CUDA
//   backend) scores, selects and compacts on its own pages: the policy
//   becomes a kernels::EvictionPlan (engine/eviction/eviction_plan.h, the
//   same decisions SelectTokens makes) and no page leaves the device; the
//   W_O factors are uploaded once per layer.
// - Otherwise the reference path: the layer's K/V are gathered into
//   contiguous host arrays and SelectTokens (engine/eviction/) chooses. Pages
//   the host cannot address (Backend::host_addressable() false) are read and
//   written through the backend's copies, one whole page at a time; this is
//   also the device fallback for knobs the kernels lack (metric=before).
//
// Pages are read in their stored dtype (kernels/kv_dtype.h): scoring sees
// each row converted to f32, and compaction moves the stored bytes (rows and
// q8_0 scales), so kept tokens keep exactly the values attention read before.
// The device kernels read f32 pages only; other dtypes on a device take the
// reference path (the layer's pages copied to host images, compacted there
// and written back) until the kernels read them too.
//
// Thread safety: one caller thread (the engine's); the W_O factors are
// computed lazily on first use and cached.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/eviction/token_selection.h"
#include "engine/kv/sequence_kv.h"
#include "engine/model/model_config.h"
#include "engine/model/model_weights.h"
#include "kernels/backend.h"
#include "kernels/layer_eviction.h"

namespace restkv::engine {

struct EvictionReport {
  int64_t tokens_kept = 0;     // summed over layers
  int64_t tokens_evicted = 0;  // summed over layers
  int64_t pages_released = 0;
  // Observer for inspection tools (`restkv eval keep`): when true, EvictLayer
  // records the selection it compacted to, kept[layer][kv_head] = ascending
  // prompt positions. Layers that were not evicted stay empty. Off in serving.
  bool record_kept = false;
  std::vector<std::vector<std::vector<int32_t>>> kept;
};

class LayerEvictor {
 public:
  // `weights` and `backend` must outlive the evictor; scoring runs on
  // backend.host_pool() (inline when null).
  LayerEvictor(const ModelConfig& config, const ModelWeights& weights, kernels::Backend& backend);

  [[nodiscard]] const ModelConfig& config() const { return config_; }

  // REQUIRES: layer `layer` of `kv` holds exactly num_tokens slots (the
  // whole prompt, just prefilled); q_window [num_queries][H][d] are its last
  // queries (post-RoPE); q_all [num_tokens][H][d] every query, only when
  // NeedsH2oScores(policy) (else null).
  // Errors: the backend's eviction kernels' status (InvalidArgument for a
  // shape they do not support, ResourceExhausted for scratch memory,
  // Internal); the layer's pages are then unspecified and the request must
  // fail. The host path cannot fail.
  absl::Status EvictLayer(const KvPolicyConfig& policy, int32_t layer, int32_t num_tokens,
                          const float* q_window, int32_t num_queries, const float* q_all,
                          SequenceKv& kv, EvictionReport* report);

 private:
  const float* WoFactor(int32_t layer);
  // The layer's W_O factors in backend memory (uploaded on first use).
  absl::StatusOr<const float*> DeviceWoFactor(int32_t layer);
  // Scores, selects and compacts with the backend's kernels; kept gets the
  // kept positions only when the report records them.
  absl::Status EvictOnDevice(kernels::LayerEvictionOps& ops, const kernels::EvictionPlan& plan,
                             const KvPolicyConfig& policy, int32_t layer, int32_t n,
                             const float* q_window, int32_t num_queries, const float* q_all,
                             const SequenceKv& kv, bool record,
                             std::vector<std::vector<int32_t>>* kept);
  // After compaction: the layer's length (the longest head's), its per-head
  // lengths when they differ (AdaKV padding), the freed pages, the report.
  void Commit(const KvPolicyConfig& policy, int32_t layer, int32_t n, std::vector<int32_t> lens,
              const std::vector<std::vector<int32_t>>& keep, SequenceKv& kv,
              EvictionReport* report) const;
  void Report(int32_t layer, int32_t n, int32_t kept, int32_t released,
              const std::vector<std::vector<int32_t>>& keep, EvictionReport* report) const;
  // Byte addresses of row (head, slot) of a page's K and V and, for q8_0,
  // of their scales (null otherwise).
  struct PageRow {
    uint8_t* k = nullptr;
    uint8_t* v = nullptr;
    float* k_scale = nullptr;
    float* v_scale = nullptr;
  };
  static PageRow RowOf(float* page, const kernels::KvPageLayout& layout, int32_t head,
                       int32_t slot);
  // images_ <- the first num_pages device pages; host_pages[p] -> image p.
  void CopyPagesToHost(const std::vector<float*>& pages, int32_t num_pages,
                       const kernels::KvPageLayout& layout, std::vector<float*>* host_pages);

  const ModelConfig& config_;
  const ModelWeights& weights_;
  kernels::Backend& backend_;
  ThreadPool* threads_;
  std::vector<std::vector<float>> wo_factor_;                // [L][H][d][d], empty until needed
  std::vector<std::unique_ptr<kernels::Buffer>> wo_device_;  // [L] backend copies of wo_factor_
  std::vector<float> k_, v_, h2o_;  // scratch: [Hkv][N][d], [Hkv][N][d], [H][N]
  std::vector<float> images_;       // device path: the layer's page images
};

// H2O's heavy-hitter scores: for each query head, the causal attention
// probability each key receives, summed over all queries.
// q [N][H][d], k [Hkv][N][d] -> out [H][N].
void AccumulatedAttention(const float* q, const float* k, int32_t num_tokens, int32_t heads,
                          int32_t kv_heads, int32_t head_dim, float* out, ThreadPool* pool);

}  // namespace restkv::engine
