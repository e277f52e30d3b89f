#include "engine/kv/layer_evictor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "common/check.h"
#include "common/status_macros.h"
#include "engine/eviction/eviction_plan.h"
#include "engine/eviction/wo_factor.h"
#include "kernels/cpu/dequantize.h"

namespace restkv::engine {

LayerEvictor::LayerEvictor(const ModelConfig& config, const ModelWeights& weights,
                           kernels::Backend& backend)
    : config_(config),
      weights_(weights),
      backend_(backend),
      threads_(backend.host_pool()),
      wo_factor_(config.num_layers),
      wo_device_(config.num_layers) {}

const float* LayerEvictor::WoFactor(int32_t layer) {
  std::vector<float>& f = wo_factor_[layer];
  if (f.empty()) {
    // W_O [D][H·d] in f32, from the weights as the backend holds them.
    const kernels::Matrix& wo = weights_.layers[layer].wo;
    std::vector<float> dense(static_cast<size_t>(wo.rows) * wo.cols);
    const int64_t row_bytes = kernels::RowBytes(wo.type, wo.cols);
    const uint8_t* bytes = static_cast<const uint8_t*>(wo.data);
    std::vector<float> staged;  // device weights: their bytes, copied to the host
    if (!backend_.host_addressable()) {
      const int64_t total = row_bytes * wo.rows;
      RESTKV_CHECK(total % sizeof(float) == 0) << "W_O of " << total << " bytes";
      staged.resize(static_cast<size_t>(total / sizeof(float)));
      backend_.CopyToHost(static_cast<const float*>(wo.data), staged.data(), staged.size());
      bytes = reinterpret_cast<const uint8_t*>(staged.data());
    }
    for (int64_t r = 0; r < wo.rows; ++r) {
      kernels::DequantizeRow(wo.type, bytes + r * row_bytes, dense.data() + r * wo.cols, wo.cols);
    }
    f = ComputeWoFactor(dense.data(), config_.hidden_size, config_.num_heads, config_.head_dim);
  }
  return f.data();
}

void AccumulatedAttention(const float* q, const float* k, int32_t n, int32_t heads,
                          int32_t kv_heads, int32_t d, float* out, ThreadPool* pool) {
  const int32_t group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  auto run = [&](int64_t h0, int64_t h1, int) {
    std::vector<float> p(n);
    for (int64_t h = h0; h < h1; ++h) {
      float* col = out + h * n;
      std::fill(col, col + n, 0.0f);
      const float* kh = k + static_cast<int64_t>(h / group) * n * d;
      for (int32_t t = 0; t < n; ++t) {
        const float* qt = q + (static_cast<int64_t>(t) * heads + h) * d;
        float mx = -INFINITY;
        for (int32_t j = 0; j <= t; ++j) {
          float dot = 0;
          for (int32_t i = 0; i < d; ++i) dot += qt[i] * kh[static_cast<int64_t>(j) * d + i];
          p[j] = dot * scale;
          mx = std::max(mx, p[j]);
        }
        float sum = 0;
        for (int32_t j = 0; j <= t; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (int32_t j = 0; j <= t; ++j) col[j] += p[j] / sum;
      }
    }
  };
  if (pool != nullptr) {
    pool->ParallelFor(heads, run);
  } else {
    run(0, heads, 0);
  }
}

absl::StatusOr<const float*> LayerEvictor::DeviceWoFactor(int32_t layer) {
  std::unique_ptr<kernels::Buffer>& buf = wo_device_[layer];
  if (buf == nullptr) {
    const float* host = WoFactor(layer);
    const size_t n = wo_factor_[layer].size();
    RESTKV_ASSIGN_OR_RETURN(buf, backend_.Allocate(n * sizeof(float)));
    backend_.CopyFromHost(host, buf->floats(), n);
  }
  return buf->floats();
}

absl::Status LayerEvictor::EvictOnDevice(kernels::LayerEvictionOps& ops,
                                         const kernels::EvictionPlan& plan,
                                         const KvPolicyConfig& policy, int32_t layer, int32_t n,
                                         const float* q_window, int32_t num_queries,
                                         const float* q_all, const SequenceKv& kv, bool record,
                                         std::vector<std::vector<int32_t>>* kept) {
  kernels::EvictionLayerView view;
  view.num_tokens = n;
  view.num_heads = config_.num_heads;
  view.num_kv_heads = config_.num_kv_heads;
  view.head_dim = config_.head_dim;
  view.block_size = kv.block_size();
  view.pages = kv.page_ptrs()[layer].data();
  view.dtype = kv.layout().dtype;
  view.q_window = q_window;
  view.num_queries = num_queries;
  view.q_all = q_all;
  if (NeedsWoFactor(policy)) {
    RESTKV_ASSIGN_OR_RETURN(view.wo_factor, DeviceWoFactor(layer));
  }
  RESTKV_RETURN_IF_ERROR(ops.EvictLayer(plan, view));
  if (record) RESTKV_RETURN_IF_ERROR(ops.LastKept(kept));
  return absl::OkStatus();
}

void LayerEvictor::Report(int32_t layer, int32_t n, int32_t kept, int32_t released,
                          const std::vector<std::vector<int32_t>>& keep,
                          EvictionReport* report) const {
  if (report == nullptr) return;
  report->tokens_kept += kept;
  report->tokens_evicted += n - kept;
  report->pages_released += released;
  if (report->record_kept) {
    if (report->kept.size() < static_cast<size_t>(config_.num_layers)) {
      report->kept.resize(config_.num_layers);
    }
    report->kept[layer] = keep;
  }
}

absl::Status LayerEvictor::EvictLayer(const KvPolicyConfig& policy, int32_t layer, int32_t n,
                                      const float* q_window, int32_t num_queries,
                                      const float* q_all, SequenceKv& kv, EvictionReport* report) {
  const int32_t H = config_.num_heads, Hkv = config_.num_kv_heads, d = config_.head_dim;
  const int32_t bs = kv.block_size();
  const kernels::KvPageLayout layout = kv.layout();
  RESTKV_CHECK_EQ(kv.cached_len()[layer], n) << "layer " << layer;
  RESTKV_CHECK(layout.kv_heads == Hkv && layout.head_dim == d) << "pool shape";
  // The device kernels read pages of every dtype in place
  // (kernels/cuda/kv_page_access.cuh); a backend without them (the CPU)
  // scores on the pages directly below.
  if (kernels::LayerEvictionOps* ops = backend_.layer_eviction(); ops != nullptr) {
    if (const auto plan = MakeEvictionPlan(policy, layer, config_.num_layers, n)) {
      const bool record = report != nullptr && report->record_kept;
      std::vector<std::vector<int32_t>> keep;
      RESTKV_RETURN_IF_ERROR(EvictOnDevice(*ops, *plan, policy, layer, n, q_window, num_queries,
                                           q_all, kv, record, &keep));
      Commit(policy, layer, n, ops->LastLengths(), keep, kv, report);
      return absl::OkStatus();
    }
  }
  const std::vector<float*>& pages = kv.page_ptrs()[layer];
  const int32_t num_pages = (n + bs - 1) / bs;
  // Host-addressable views of the layer's pages: the pages themselves, or
  // images of them copied from the device.
  std::vector<float*> host_pages(pages.begin(), pages.begin() + num_pages);
  if (!backend_.host_addressable()) CopyPagesToHost(pages, num_pages, layout, &host_pages);
  // Scoring input: the layer's K/V as f32 [Hkv][N][d], each stored row
  // converted (the exact values attention reads).
  k_.resize(static_cast<size_t>(Hkv) * n * d);
  v_.resize(k_.size());
  for (int32_t h = 0; h < Hkv; ++h) {
    for (int32_t t = 0; t < n; ++t) {
      const PageRow row = RowOf(host_pages[t / bs], layout, h, t % bs);
      const int64_t at = (static_cast<int64_t>(h) * n + t) * d;
      kernels::DecodeKvRow(layout.dtype, row.k, row.k_scale ? *row.k_scale : 1.0f, d, &k_[at]);
      kernels::DecodeKvRow(layout.dtype, row.v, row.v_scale ? *row.v_scale : 1.0f, d, &v_[at]);
    }
  }
  LayerScoringInput in;
  in.num_tokens = n;
  in.num_heads = H;
  in.num_kv_heads = Hkv;
  in.head_dim = d;
  in.num_queries = num_queries;
  in.q_window = q_window;
  in.k = k_.data();
  in.v = v_.data();
  if (NeedsWoFactor(policy)) in.wo_factor = WoFactor(layer);
  if (NeedsH2oScores(policy)) {
    RESTKV_CHECK(q_all != nullptr) << "H2O needs every query";
    h2o_.resize(static_cast<size_t>(H) * n);
    AccumulatedAttention(q_all, k_.data(), n, H, Hkv, d, h2o_.data(), threads_);
    in.h2o_scores = h2o_.data();
  }
  const std::vector<std::vector<int32_t>> keep =
      SelectTokens(policy, layer, config_.num_layers, in, threads_);
  RESTKV_CHECK_EQ(static_cast<int32_t>(keep.size()), Hkv);
  std::vector<int32_t> lens(Hkv);
  for (int32_t h = 0; h < Hkv; ++h) lens[h] = static_cast<int32_t>(keep[h].size());
  const int32_t kept = *std::max_element(lens.begin(), lens.end());
  // Compact in place, head by head: slot i <- slot keep[h][i]. The stored
  // bytes move (rows and their q8_0 scales), so kept values are bit-identical
  // to what was written. keep ascends, so a source slot is never
  // overwritten before it is read.
  const int64_t row_bytes = layout.row_bytes();
  for (int32_t h = 0; h < Hkv; ++h) {
    for (int32_t i = 0; i < lens[h]; ++i) {
      const int32_t t = keep[h][i];
      RESTKV_CHECK(t >= i && t < n) << "kept index " << t << " at slot " << i;
      if (t == i) continue;
      const PageRow src = RowOf(host_pages[t / bs], layout, h, t % bs);
      const PageRow dst = RowOf(host_pages[i / bs], layout, h, i % bs);
      std::memcpy(dst.k, src.k, row_bytes);
      std::memcpy(dst.v, src.v, row_bytes);
      if (layout.has_scales()) {
        *dst.k_scale = *src.k_scale;
        *dst.v_scale = *src.v_scale;
      }
    }
  }
  if (!backend_.host_addressable()) {
    const int64_t page_floats = layout.page_bytes() / static_cast<int64_t>(sizeof(float));
    for (int32_t p = 0; p * bs < kept; ++p) {
      backend_.CopyFromHost(host_pages[p], pages[p], static_cast<size_t>(page_floats));
    }
  }
  Commit(policy, layer, n, std::move(lens), keep, kv, report);
  return absl::OkStatus();
}

void LayerEvictor::Commit(const KvPolicyConfig& policy, int32_t layer, int32_t n,
                          std::vector<int32_t> lens, const std::vector<std::vector<int32_t>>& keep,
                          SequenceKv& kv, EvictionReport* report) const {
  // Every head keeps the same count, except under AdaKV: then the layer
  // keeps the longest head's count and the others are padded.
  RESTKV_CHECK_EQ(static_cast<int32_t>(lens.size()), config_.num_kv_heads);
  const int32_t kept = *std::max_element(lens.begin(), lens.end());
  const bool padded = *std::min_element(lens.begin(), lens.end()) != kept;
  RESTKV_CHECK(!padded || policy.adaptive == AdaptiveBudget::kAdaKv);
  RESTKV_CHECK_LE(kept, KeptTokensForLayer(policy, layer, config_.num_layers, n));
  const int32_t released = kv.TruncateLayer(layer, kept);
  if (padded) kv.SetHeadLengths(layer, std::move(lens));
  Report(layer, n, kept, released, keep, report);
}

LayerEvictor::PageRow LayerEvictor::RowOf(float* page, const kernels::KvPageLayout& layout,
                                          int32_t head, int32_t slot) {
  auto* base = reinterpret_cast<uint8_t*>(page);
  const int64_t row = layout.RowIndex(head, slot);
  PageRow r;
  r.k = base + row * layout.row_bytes();
  r.v = base + layout.v_offset() + row * layout.row_bytes();
  if (layout.has_scales()) {
    r.k_scale = reinterpret_cast<float*>(base + layout.k_scale_offset()) + row;
    r.v_scale = reinterpret_cast<float*>(base + layout.v_scale_offset()) + row;
  }
  return r;
}

void LayerEvictor::CopyPagesToHost(const std::vector<float*>& pages, int32_t num_pages,
                                   const kernels::KvPageLayout& layout,
                                   std::vector<float*>* host_pages) {
  const int64_t page_floats = layout.page_bytes() / static_cast<int64_t>(sizeof(float));
  images_.resize(static_cast<size_t>(page_floats) * num_pages);
  // Pages adjacent in memory (the pool hands out runs) come over in one
  // copy: each copy synchronises with the device.
  constexpr int32_t kMaxRun = 64;
  for (int32_t p0 = 0; p0 < num_pages;) {
    int32_t run = 1;
    while (p0 + run < num_pages && run < kMaxRun &&
           pages[p0 + run] == pages[p0] + run * page_floats) {
      ++run;
    }
    backend_.CopyToHost(pages[p0], images_.data() + p0 * page_floats,
                        static_cast<size_t>(run * page_floats));
    p0 += run;
  }
  for (int32_t p = 0; p < num_pages; ++p) (*host_pages)[p] = images_.data() + p * page_floats;
}

}  // namespace restkv::engine
