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
// Pages are read in their stored dtype (kernels/kv_dtype.h): scoring sees
// each row converted to f32, and compaction moves the stored bytes (rows and
// q8_0 scales), so kept tokens keep exactly the values attention read before.
//
// Pages in device memory (Backend::host_addressable() false) are copied to
// host images, compacted there, and the kept pages written back.
// NOTE(restkv): on a GPU this means the layer's K/V cross PCIe twice per
// evicting layer and scoring runs on the host; scoring on the device is
// the next step of the CUDA backend (kernels/cuda/README-dev.md).
//
// Thread safety: one caller thread (the engine's); the W_O factors are
// computed lazily on first use and cached.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/eviction/token_selection.h"
#include "engine/model/model_config.h"
#include "engine/model/model_weights.h"
#include "engine/kv/sequence_kv.h"

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
  void EvictLayer(const KvPolicyConfig& policy, int32_t layer, int32_t num_tokens,
                  const float* q_window, int32_t num_queries, const float* q_all, SequenceKv& kv,
                  EvictionReport* report);

 private:
  const float* WoFactor(int32_t layer);
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
  std::vector<std::vector<float>> wo_factor_;  // [L][H][d][d], empty until needed
  std::vector<float> k_, v_, h2o_;             // scratch: [Hkv][N][d], [Hkv][N][d], [H][N]
  std::vector<float> images_;                  // device path: the layer's page images
};

// H2O's heavy-hitter scores: for each query head, the causal attention
// probability each key receives, summed over all queries.
// q [N][H][d], k [Hkv][N][d] -> out [H][N].
void AccumulatedAttention(const float* q, const float* k, int32_t num_tokens, int32_t heads,
                          int32_t kv_heads, int32_t head_dim, float* out, ThreadPool* pool);

}  // namespace restkv::engine
