// BlockPool: the KV page pool. One slab carved into fixed pages at start-up.
//
// A page holds `block_size` token slots of K and V for one layer and all KV
// heads (layout in kernels/backend.h), so any page can serve any layer.
// Allocate/Free are O(1) over a LIFO free list (recently freed pages are
// reused first, which keeps them warm in cache).
//
// "No page free" is std::nullopt, a normal answer the caller handles
// (preempt, refuse admission), never an error. Freeing a page twice or an
// unknown id is a programming error (RESTKV_CHECK).
//
// Thread safety: none; owned and used by the engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace restkv::engine {

struct KvPageShape {
  int32_t num_kv_heads = 0;                         // Hkv
  int32_t head_dim = 0;                             // d
  int32_t block_size = 16;                          // token slots per page
  kernels::KvDtype dtype = kernels::KvDtype::kF32;  // element type of K and V
  // The page's byte layout (K and V [Hkv][block_size][d] each, q8_0 scales).
  [[nodiscard]] kernels::KvPageLayout layout() const {
    return {num_kv_heads, head_dim, block_size, dtype};
  }
  [[nodiscard]] int64_t page_bytes() const { return layout().page_bytes(); }
};

class BlockPool {
 public:
  // Errors: InvalidArgument if num_pages < 1 or the shape is empty;
  // ResourceExhausted if the backend cannot allocate the slab.
  static absl::StatusOr<std::unique_ptr<BlockPool>> Create(kernels::Backend& backend,
                                                           const KvPageShape& shape,
                                                           int32_t num_pages);
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // A free page id, or nullopt when none is left.
  std::optional<int32_t> Allocate();
  // REQUIRES: id was returned by Allocate() and not freed since.
  void Free(int32_t id);

  // The page's base address (bytes laid out as shape().layout()).
  // REQUIRES: 0 <= id < num_pages().
  [[nodiscard]] float* PageData(int32_t id) const;
  [[nodiscard]] const KvPageShape& shape() const { return shape_; }
  [[nodiscard]] int32_t num_pages() const { return static_cast<int32_t>(allocated_.size()); }
  [[nodiscard]] int32_t num_free() const { return static_cast<int32_t>(free_.size()); }
  [[nodiscard]] int32_t num_used() const { return num_pages() - num_free(); }
  // Most pages ever in use at once since creation or ResetHighWater().
  [[nodiscard]] int32_t high_water() const { return high_water_; }
  void ResetHighWater() { high_water_ = num_used(); }

 private:
  BlockPool(std::unique_ptr<kernels::Buffer> slab, const KvPageShape& shape, int32_t num_pages);

  std::unique_ptr<kernels::Buffer> slab_;
  KvPageShape shape_;
  std::vector<int32_t> free_;    // stack of free ids
  std::vector<bool> allocated_;  // [num_pages]
  int32_t high_water_ = 0;
};

}  // namespace restkv::engine
