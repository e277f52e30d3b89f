#include "kernels/cuda/device_layer_eviction.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "kernels/cuda/eviction_launch.h"

namespace restkv::kernels::cuda {
namespace {

absl::Status CheckLayer(const EvictionPlan& plan, const EvictionLayerView& layer) {
  const int32_t n = layer.num_tokens;
  if (n < 1 || layer.num_heads < 1 || layer.num_kv_heads < 1 ||
      layer.num_heads % layer.num_kv_heads != 0 || layer.block_size < 1 || layer.pages == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("device eviction: %d tokens, %d heads over %d KV heads, block %d", n,
                        layer.num_heads, layer.num_kv_heads, layer.block_size));
  }
  if (layer.head_dim < 1 || layer.head_dim > kMaxEvictionHeadDim) {
    return absl::InvalidArgumentError(absl::StrFormat("device eviction: head_dim %d outside 1..%d",
                                                      layer.head_dim, kMaxEvictionHeadDim));
  }
  const int32_t kept = plan.KeptTokens();
  if (plan.head_counts &&
      (plan.score == EvictionScore::kPositions || plan.score == EvictionScore::kLastQueryMean)) {
    return absl::InvalidArgumentError("device eviction: head-wise counts need candidate scores");
  }
  if (plan.head_counts && (plan.head_cap < plan.keep || plan.head_cap > n - plan.window)) {
    return absl::InvalidArgumentError(absl::StrFormat("device eviction: head cap %d outside %d..%d",
                                                      plan.head_cap, plan.keep, n - plan.window));
  }
  if (kept < 1 || kept > n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("device eviction: %d kept of %d tokens", kept, n));
  }
  switch (plan.score) {
    case EvictionScore::kPositions:
      for (size_t i = 0; i < plan.positions.size(); ++i) {
        const int32_t t = plan.positions[i];
        if (t < static_cast<int32_t>(i) || t >= n || (i > 0 && t <= plan.positions[i - 1])) {
          return absl::InvalidArgumentError(
              absl::StrFormat("device eviction: position %d at slot %d is not ascending", t, i));
        }
      }
      return absl::OkStatus();
    case EvictionScore::kLastQueryMean:
      if (layer.q_window == nullptr || layer.num_queries < 1 || plan.keep < 1) {
        return absl::InvalidArgumentError("device eviction: TOVA needs the last query");
      }
      return absl::OkStatus();
    case EvictionScore::kAccumulatedAttention:
      if (layer.q_all == nullptr) {
        return absl::InvalidArgumentError("device eviction: H2O needs every query");
      }
      break;
    case EvictionScore::kWindowSum:
    case EvictionScore::kReconstruction:
      if (layer.q_window == nullptr || layer.num_queries < plan.window ||
          static_cast<int32_t>(plan.row_weights.size()) != plan.window) {
        return absl::InvalidArgumentError(
            absl::StrFormat("device eviction: %d window rows, %d queries, %d row weights",
                            plan.window, layer.num_queries, plan.row_weights.size()));
      }
      if (plan.pooling == EvictionPooling::kAdaptive && plan.window % 2 != 0) {
        return absl::InvalidArgumentError("device eviction: adaptive pooling needs an even window");
      }
      break;
  }
  if (plan.window < 1 || plan.keep < 1 || plan.keep > n - plan.window) {
    return absl::InvalidArgumentError(
        absl::StrFormat("device eviction: keep %d of %d candidates (window %d)", plan.keep,
                        n - plan.window, plan.window));
  }
  return absl::OkStatus();
}

PoolKind PoolKindFor(EvictionPooling pooling) {
  switch (pooling) {
    case EvictionPooling::kAdaptive:
      return PoolKind::kShiftedBox;
    case EvictionPooling::kAvgZeroPad:
      return PoolKind::kAvgZeroPad;
    case EvictionPooling::kMax:
      return PoolKind::kMax;
    case EvictionPooling::kNone:
      break;
  }
  return PoolKind::kCopy;
}

}  // namespace

absl::StatusOr<void*> DeviceLayerEviction::Scratch(Slot slot, size_t bytes) {
  std::unique_ptr<Buffer>& buf = scratch_[slot];
  if (buf == nullptr || buf->size_bytes() < bytes) {
    buf.reset();  // give the old allocation back before asking for a larger one
    // Grow by half again so slowly growing prompts do not reallocate per layer.
    RESTKV_ASSIGN_OR_RETURN(buf, memory_.Allocate(std::max<size_t>(bytes + bytes / 2, 64)));
  }
  return buf->data();
}

template <typename T>
absl::StatusOr<T*> DeviceLayerEviction::Upload(Slot slot, const T* host, size_t count) {
  RESTKV_ASSIGN_OR_RETURN(void* dev, Scratch(slot, count * sizeof(T)));
  RESTKV_RETURN_IF_ERROR(memory_.Upload(host, dev, count * sizeof(T)));
  return static_cast<T*>(dev);
}

absl::Status DeviceLayerEviction::EvictLayer(const EvictionPlan& plan,
                                             const EvictionLayerView& layer) {
  last_lengths_.clear();
  RESTKV_RETURN_IF_ERROR(CheckLayer(plan, layer));
  const int32_t n = layer.num_tokens;
  const int32_t num_pages = (n + layer.block_size - 1) / layer.block_size;
  RESTKV_ASSIGN_OR_RETURN(float* const* table,
                          Upload(kPageTable, layer.pages, static_cast<size_t>(num_pages)));
  const KvPages kv{table, n, layer.num_kv_heads, layer.block_size, layer.head_dim, layer.dtype};
  std::vector<int32_t> lengths(layer.num_kv_heads, plan.KeptTokens());
  RESTKV_RETURN_IF_ERROR(Select(plan, layer, kv));
  if (plan.head_counts) lengths = chosen_lengths_;
  // The longest head's slots move; a shorter head's tail is padding.
  const int32_t kept = *std::max_element(lengths.begin(), lengths.end());
  // A plan that keeps a prefix (a PyramidKV layer keeping everything) moves
  // nothing.
  bool prefix = plan.score == EvictionScore::kPositions;
  for (size_t i = 0; prefix && i < plan.positions.size(); ++i) {
    prefix = plan.positions[i] == static_cast<int32_t>(i);
  }
  if (!prefix) {
    RESTKV_ASSIGN_OR_RETURN(void* stage,
                            Scratch(kStaged, static_cast<size_t>(StagedKeptBytes(kv, kept))));
    RESTKV_RETURN_IF_ERROR(LaunchGatherKept(kv, keep_, keep_stride_, kept, stage, stream_));
    RESTKV_RETURN_IF_ERROR(LaunchScatterKept(stage, kv, kept, stream_));
  }
  last_lengths_ = std::move(lengths);
  return absl::OkStatus();
}

absl::Status DeviceLayerEviction::Select(const EvictionPlan& plan, const EvictionLayerView& layer,
                                         const KvPages& kv) {
  switch (plan.score) {
    case EvictionScore::kPositions: {
      RESTKV_ASSIGN_OR_RETURN(keep_, Upload(kKeep, plan.positions.data(), plan.positions.size()));
      keep_stride_ = 0;
      return absl::OkStatus();
    }
    case EvictionScore::kLastQueryMean:
      return SelectLastQuery(plan, layer, kv);
    case EvictionScore::kAccumulatedAttention:
      return SelectAccumulated(plan, layer, kv);
    case EvictionScore::kWindowSum:
    case EvictionScore::kReconstruction:
      return SelectWindowScored(plan, layer, kv);
  }
  return absl::InternalError("device eviction: unknown score");
}

// TOVA: the last query's attention over all N keys, averaged over all H
// heads (engine/eviction/token_selection.cc SelectTova).
absl::Status DeviceLayerEviction::SelectLastQuery(const EvictionPlan& plan,
                                                  const EvictionLayerView& layer,
                                                  const KvPages& kv) {
  const int32_t n = layer.num_tokens, heads = layer.num_heads, d = layer.head_dim;
  const int64_t qrow = static_cast<int64_t>(heads) * d;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  RESTKV_ASSIGN_OR_RETURN(
      float* q,
      Upload(kQueries, layer.q_window + (layer.num_queries - 1) * qrow, static_cast<size_t>(qrow)));
  RESTKV_ASSIGN_OR_RETURN(void* probs, Scratch(kProbs, sizeof(float) * heads * n));
  RESTKV_ASSIGN_OR_RETURN(void* mean, Scratch(kReduced, sizeof(float) * n));
  RESTKV_ASSIGN_OR_RETURN(void* keep, Scratch(kKeep, sizeof(int32_t) * plan.keep));
  float* p = static_cast<float*>(probs);
  RESTKV_RETURN_IF_ERROR(
      LaunchWindowProbs(q, qrow, 1, n - 1, kv, heads, 0, heads, scale, p, stream_));
  RESTKV_RETURN_IF_ERROR(
      LaunchReduceGroups(p, 1, heads, n, n, false, static_cast<float*>(mean), stream_));
  keep_ = static_cast<int32_t*>(keep);
  keep_stride_ = 0;
  return LaunchTopKIndices(static_cast<float*>(mean), 1, n, n, plan.keep, 0, keep_, stream_);
}

// H2O: every query's causal attention row, summed per key; rows in chunks
// so the probabilities stay under kMaxProbsBytes.
absl::Status DeviceLayerEviction::SelectAccumulated(const EvictionPlan& plan,
                                                    const EvictionLayerView& layer,
                                                    const KvPages& kv) {
  const int32_t n = layer.num_tokens, heads = layer.num_heads, d = layer.head_dim;
  const int32_t group = heads / layer.num_kv_heads;
  const int64_t qrow = static_cast<int64_t>(heads) * d;
  const int64_t m = n - plan.window;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t row_bytes = sizeof(float) * static_cast<int64_t>(heads) * n;
  const int32_t chunk =
      static_cast<int32_t>(std::clamp<int64_t>(kMaxProbsBytes / row_bytes, 1, std::min(n, 4096)));
  RESTKV_ASSIGN_OR_RETURN(void* probs, Scratch(kProbs, static_cast<size_t>(row_bytes) * chunk));
  RESTKV_ASSIGN_OR_RETURN(void* acc, Scratch(kRaw, static_cast<size_t>(row_bytes)));
  RESTKV_ASSIGN_OR_RETURN(void* reduced, Scratch(kReduced, sizeof(float) * layer.num_kv_heads * m));
  float* p = static_cast<float*>(probs);
  float* a = static_cast<float*>(acc);
  for (int32_t t0 = 0; t0 < n; t0 += chunk) {
    const int32_t rows = std::min(chunk, n - t0);
    RESTKV_ASSIGN_OR_RETURN(
        float* q, Upload(kQueries, layer.q_all + t0 * qrow, static_cast<size_t>(rows * qrow)));
    RESTKV_RETURN_IF_ERROR(
        LaunchWindowProbs(q, qrow, rows, t0, kv, heads, 0, heads, scale, p, stream_));
    RESTKV_RETURN_IF_ERROR(LaunchAccumulateRows(p, heads, rows, n, t0 == 0, a, stream_));
  }
  // Candidates are the first M of each head's N sums (no pooling for H2O).
  RESTKV_RETURN_IF_ERROR(LaunchReduceGroups(a, layer.num_kv_heads, group, n, m, plan.reduce_max,
                                            static_cast<float*>(reduced), stream_));
  return KeepTopCandidates(plan, static_cast<float*>(reduced), layer.num_kv_heads, m, n);
}

// SnapKV / PyramidKV (kWindowSum) and ReST-KV (kReconstruction).
absl::Status DeviceLayerEviction::SelectWindowScored(const EvictionPlan& plan,
                                                     const EvictionLayerView& layer,
                                                     const KvPages& kv) {
  const int32_t n = layer.num_tokens, heads = layer.num_heads, d = layer.head_dim;
  const int32_t kv_heads = layer.num_kv_heads, group = heads / kv_heads;
  const int32_t w = plan.window;
  const int64_t m = n - w;
  const int64_t qrow = static_cast<int64_t>(heads) * d;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const bool reconstruct = plan.score == EvictionScore::kReconstruction;
  const bool adaptive = plan.pooling == EvictionPooling::kAdaptive;
  const int64_t head_probs_bytes = sizeof(float) * static_cast<int64_t>(w) * n;
  const int32_t chunk =
      static_cast<int32_t>(std::clamp<int64_t>(kMaxProbsBytes / head_probs_bytes, 1, heads));

  RESTKV_ASSIGN_OR_RETURN(float* q,
                          Upload(kQueries, layer.q_window + (layer.num_queries - w) * qrow,
                                 static_cast<size_t>(w * qrow)));
  RESTKV_ASSIGN_OR_RETURN(float* weights, Upload(kWeights, plan.row_weights.data(), w));
  RESTKV_ASSIGN_OR_RETURN(void* probs_v,
                          Scratch(kProbs, static_cast<size_t>(head_probs_bytes) * chunk));
  RESTKV_ASSIGN_OR_RETURN(void* abar_v, Scratch(kAbar, sizeof(float) * heads * m));
  RESTKV_ASSIGN_OR_RETURN(void* obar_v, Scratch(kObar, sizeof(float) * heads * d));
  RESTKV_ASSIGN_OR_RETURN(void* raw_v, Scratch(kRaw, sizeof(float) * heads * m));
  RESTKV_ASSIGN_OR_RETURN(void* smooth_v, Scratch(kSmoothed, sizeof(float) * heads * m));
  RESTKV_ASSIGN_OR_RETURN(void* sums_v, Scratch(kSums, sizeof(int64_t) * heads * w));
  RESTKV_ASSIGN_OR_RETURN(void* shapes_v, Scratch(kShapes, sizeof(PoolShape) * heads));
  RESTKV_ASSIGN_OR_RETURN(void* reduced_v, Scratch(kReduced, sizeof(float) * kv_heads * m));
  float* probs = static_cast<float*>(probs_v);
  float* abar = static_cast<float*>(abar_v);
  float* obar = static_cast<float*>(obar_v);
  // SnapKV's raw score is the window sum itself.
  float* raw = reconstruct ? static_cast<float*>(raw_v) : abar;
  int64_t* sums = static_cast<int64_t*>(sums_v);
  for (int32_t h0 = 0; h0 < heads; h0 += chunk) {
    const int32_t c = std::min(chunk, heads - h0);
    RESTKV_RETURN_IF_ERROR(LaunchWindowProbs(q, qrow, w, static_cast<int32_t>(m), kv, heads, h0, c,
                                             scale, probs, stream_));
    RESTKV_RETURN_IF_ERROR(LaunchAggregateRows(probs, weights, c, w, n, m, abar + h0 * m, stream_));
    if (reconstruct) {
      RESTKV_RETURN_IF_ERROR(
          LaunchCandidateOutput(abar + h0 * m, kv, heads, h0, c, m, obar + h0 * d, stream_));
      RESTKV_RETURN_IF_ERROR(LaunchReconstructionScores(abar + h0 * m, obar + h0 * d, kv,
                                                        layer.wo_factor, heads, h0, c, m, plan.tau,
                                                        raw + h0 * m, stream_));
    }
    if (adaptive) {
      // The drift ranks each window row's top K over all N keys.
      RESTKV_RETURN_IF_ERROR(
          LaunchTopKPositionSums(probs, c * w, n, plan.keep, sums + h0 * w, stream_));
    }
  }
  float* smoothed = static_cast<float*>(smooth_v);
  PoolShape* shapes = static_cast<PoolShape*>(shapes_v);
  if (adaptive) {
    RESTKV_RETURN_IF_ERROR(LaunchAdaptiveShapes(sums, heads, w, plan.keep, plan.beta,
                                                plan.kernel_size, shapes, stream_));
  }
  if (plan.pooling == EvictionPooling::kNone) {
    smoothed = raw;
  } else {
    RESTKV_RETURN_IF_ERROR(LaunchPool(PoolKindFor(plan.pooling), raw, heads, m, shapes,
                                      plan.kernel_size, smoothed, stream_));
  }
  float* reduced = static_cast<float*>(reduced_v);
  RESTKV_RETURN_IF_ERROR(
      LaunchReduceGroups(smoothed, kv_heads, group, m, m, plan.reduce_max, reduced, stream_));
  return KeepTopCandidates(plan, reduced, kv_heads, m, n);
}

absl::Status DeviceLayerEviction::KeepTopCandidates(const EvictionPlan& plan, const float* reduced,
                                                    int32_t kv_heads, int64_t m, int32_t n) {
  const int32_t w = plan.window;
  if (!plan.head_counts) {
    RESTKV_ASSIGN_OR_RETURN(void* keep,
                            Scratch(kKeep, sizeof(int32_t) * kv_heads * (plan.keep + w)));
    keep_ = static_cast<int32_t*>(keep);
    keep_stride_ = plan.keep + w;
    return LaunchTopKIndices(reduced, kv_heads, m, m, plan.keep, w, keep_, stream_);
  }
  // AdaKV: the counts are a host decision over every head's scores (a small
  // copy: Hkv x M floats), then one top-k launch per head with its count.
  reduced_host_.resize(static_cast<size_t>(kv_heads) * m);
  RESTKV_RETURN_IF_ERROR(
      memory_.Download(reduced, reduced_host_.data(), reduced_host_.size() * sizeof(float)));
  const std::vector<int32_t> counts = plan.head_counts(reduced_host_.data(), kv_heads, m);
  if (static_cast<int32_t>(counts.size()) != kv_heads) {
    return absl::InternalError(absl::StrFormat("device eviction: %d head counts for %d KV heads",
                                               counts.size(), kv_heads));
  }
  int32_t longest = 0;
  for (int32_t c : counts) {
    if (c < 0 || c > plan.head_cap || c > m) {
      return absl::InternalError(absl::StrFormat(
          "device eviction: head count %d outside 0..%d (%d candidates)", c, plan.head_cap, m));
    }
    longest = std::max(longest, c);
  }
  keep_stride_ = longest + w;
  // Each head's list: its c_h candidates (written by the top-k launch), the
  // window, then padding slots that gather token N-1 (any valid index:
  // attention never reads a head's padding).
  keep_host_.assign(static_cast<size_t>(kv_heads) * keep_stride_, n - 1);
  chosen_lengths_.assign(kv_heads, 0);
  for (int32_t h = 0; h < kv_heads; ++h) {
    int32_t* row = keep_host_.data() + h * keep_stride_;
    for (int32_t i = 0; i < w; ++i) row[counts[h] + i] = static_cast<int32_t>(m + i);
    chosen_lengths_[h] = counts[h] + w;
  }
  RESTKV_ASSIGN_OR_RETURN(keep_, Upload(kKeep, keep_host_.data(), keep_host_.size()));
  for (int32_t h = 0; h < kv_heads; ++h) {
    if (counts[h] == 0) continue;
    RESTKV_RETURN_IF_ERROR(LaunchTopKIndices(reduced + h * m, 1, m, m, counts[h], w,
                                             keep_ + h * keep_stride_, stream_));
  }
  return absl::OkStatus();
}

absl::Status DeviceLayerEviction::LastKept(std::vector<std::vector<int32_t>>* kept) {
  if (last_lengths_.empty()) {
    return absl::FailedPreconditionError("no layer evicted on the device yet");
  }
  const int32_t kv_heads = static_cast<int32_t>(last_lengths_.size());
  // Rows keep_stride_ apart (the longest head's slots); 0: one shared row.
  const int64_t stride = keep_stride_;
  std::vector<int32_t> flat(
      static_cast<size_t>(stride == 0 ? last_lengths_[0] : kv_heads * stride));
  RESTKV_RETURN_IF_ERROR(memory_.Download(keep_, flat.data(), flat.size() * sizeof(int32_t)));
  kept->assign(kv_heads, {});
  for (int32_t h = 0; h < kv_heads; ++h) {
    const int32_t* src = flat.data() + h * stride;
    (*kept)[h].assign(src, src + last_lengths_[h]);
  }
  return absl::OkStatus();
}

}  // namespace restkv::kernels::cuda
