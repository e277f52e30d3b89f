#include "engine/kv/block_pool.h"

#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/status_macros.h"

namespace restkv::engine {

absl::StatusOr<std::unique_ptr<BlockPool>> BlockPool::Create(kernels::Backend& backend,
                                                             const KvPageShape& shape,
                                                             int32_t num_pages) {
  if (num_pages < 1 || shape.num_kv_heads <= 0 || shape.head_dim <= 0 || shape.block_size <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "KV pool needs at least one page of non-zero size (got %d pages of %d bytes)", num_pages,
        shape.page_bytes()));
  }
  RESTKV_ASSIGN_OR_RETURN(auto slab,
                          backend.Allocate(static_cast<size_t>(num_pages) * shape.page_bytes()));
  return std::unique_ptr<BlockPool>(new BlockPool(std::move(slab), shape, num_pages));
}

BlockPool::BlockPool(std::unique_ptr<kernels::Buffer> slab, const KvPageShape& shape,
                     int32_t num_pages)
    : slab_(std::move(slab)), shape_(shape), allocated_(num_pages, false) {
  free_.reserve(num_pages);
  // Pushed in reverse so the first allocations hand out ids 0, 1, 2, ...
  for (int32_t id = num_pages - 1; id >= 0; --id) free_.push_back(id);
}

std::optional<int32_t> BlockPool::Allocate() {
  if (free_.empty()) return std::nullopt;
  const int32_t id = free_.back();
  free_.pop_back();
  allocated_[id] = true;
  high_water_ = std::max(high_water_, num_used());
  return id;
}

void BlockPool::Free(int32_t id) {
  RESTKV_CHECK(id >= 0 && id < num_pages()) << "page id " << id;
  RESTKV_CHECK(allocated_[id]) << "page " << id << " freed twice";
  allocated_[id] = false;
  free_.push_back(id);
}

float* BlockPool::PageData(int32_t id) const {
  RESTKV_CHECK(id >= 0 && id < num_pages()) << "page id " << id;
  // Page sizes are multiples of 16 bytes (KvPageLayout), so every page is
  // as aligned as the slab.
  return reinterpret_cast<float*>(static_cast<uint8_t*>(slab_->data()) +
                                  static_cast<int64_t>(id) * shape_.page_bytes());
}

}  // namespace restkv::engine
