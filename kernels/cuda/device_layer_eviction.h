// DeviceLayerEviction: LayerEvictionOps (kernels/layer_eviction.h) out of the
// eviction kernels of eviction_launch.h. The layer's pages never leave
// device memory; what crosses from the host is small: the block table, the
// window queries the model captured on the host (w x H x d floats; every
// query for H2O), the plan's row weights or positions. What goes back is
// small too: the kept indices (LastKept), and under AdaKV the reduced scores
// [Hkv][M] the host's head-wise counts are computed from.
//
// One evicting layer, ReST-KV (kReconstruction):
//   for each chunk of query heads (probabilities capped at kMaxProbsBytes):
//     WindowProbs -> AggregateRows (abar) -> CandidateOutput (obar)
//     -> ReconstructionScores; TopKPositionSums (drift) when adaptive
//   AdaptiveShapes -> Pool -> ReduceGroups -> TopKIndices (AdaKV: the
//   reduced scores to the host for the counts, then TopKIndices per head)
//   GatherKept -> ScatterKept (in place, through a staging buffer)
//
// Memory: scratch buffers are grow-only, kept between layers, allocated
// through DeviceMemoryOps (so the same code runs on the GPU and on the host
// emulation). Largest: min(H, cap) x w x N floats of probabilities, [H][M]
// floats x 3 of scores, 2 x Hkv x kept x d staged K/V.
// Thread safety: one caller thread (the backend's).
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "kernels/cuda/eviction_launch.h"
#include "kernels/layer_eviction.h"

namespace restkv::kernels::cuda {

// Device memory as DeviceLayerEviction needs it. Upload and Download are
// complete (ordered with the stream's earlier work) when they return.
class DeviceMemoryOps {
 public:
  virtual ~DeviceMemoryOps() = default;
  // Errors: ResourceExhausted when memory is short.
  virtual absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) = 0;
  // Errors: Internal for a device failure.
  virtual absl::Status Upload(const void* host, void* device, size_t bytes) = 0;
  virtual absl::Status Download(const void* device, void* host, size_t bytes) = 0;
};

class DeviceLayerEviction final : public LayerEvictionOps {
 public:
  // Probabilities of one head chunk stay under this many bytes.
  static constexpr int64_t kMaxProbsBytes = int64_t{256} << 20;

  // `memory` must outlive this object; kernels run on `stream`.
  DeviceLayerEviction(DeviceMemoryOps& memory, cudaStream_t stream)
      : memory_(memory), stream_(stream) {}

  absl::Status EvictLayer(const EvictionPlan& plan, const EvictionLayerView& layer) override;
  absl::Status LastKept(std::vector<std::vector<int32_t>>* kept) override;
  const std::vector<int32_t>& LastLengths() const override { return last_lengths_; }

 private:
  enum Slot {
    kPageTable,
    kQueries,
    kWeights,
    kProbs,
    kAbar,
    kObar,
    kRaw,
    kSmoothed,
    kSums,
    kShapes,
    kReduced,
    kKeep,
    kStaged,
    kNumSlots,
  };
  // A device buffer of at least `bytes` for `slot` (contents unspecified).
  absl::StatusOr<void*> Scratch(Slot slot, size_t bytes);
  template <typename T>
  absl::StatusOr<T*> Upload(Slot slot, const T* host, size_t count);
  // Fills keep (and sets keep_stride_) by the plan's score.
  absl::Status Select(const EvictionPlan& plan, const EvictionLayerView& layer, const KvPages& kv);
  absl::Status SelectWindowScored(const EvictionPlan& plan, const EvictionLayerView& layer,
                                  const KvPages& kv);
  absl::Status SelectAccumulated(const EvictionPlan& plan, const EvictionLayerView& layer,
                                 const KvPages& kv);
  absl::Status SelectLastQuery(const EvictionPlan& plan, const EvictionLayerView& layer,
                               const KvPages& kv);
  // Each KV head's top candidates of `reduced` [Hkv][M] and the window:
  // plan.keep per head, or plan.head_counts' counts (AdaKV).
  absl::Status KeepTopCandidates(const EvictionPlan& plan, const float* reduced, int32_t kv_heads,
                                 int64_t m, int32_t n);

  DeviceMemoryOps& memory_;
  cudaStream_t stream_;
  std::array<std::unique_ptr<Buffer>, kNumSlots> scratch_;
  int32_t* keep_ = nullptr;              // [Hkv or 1][keep_stride_] in kKeep
  int64_t keep_stride_ = 0;              // 0: one list shared by every KV head
  std::vector<int32_t> last_lengths_;    // of the last successful EvictLayer; empty = none
  std::vector<int32_t> chosen_lengths_;  // AdaKV: the slots per head Select chose
  std::vector<float> reduced_host_;      // AdaKV: the reduced scores, for head_counts
  std::vector<int32_t> keep_host_;       // AdaKV: the keep lists' window and padding
};

}  // namespace restkv::kernels::cuda
