#include "kernels/ggml_type.h"

#include "common/check.h"

namespace restkv::kernels {
namespace {

struct Entry {
  uint32_t id;
  GgmlTypeTraits traits;
};

constexpr Entry kTypes[] = {
    {0, {"F32", 1, 4, true}},
    {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", kQK4_0, sizeof(BlockQ4_0), true}},
    {3, {"Q4_1", kQK4_1, sizeof(BlockQ4_1), true}},
    {6, {"Q5_0", kQK5_0, sizeof(BlockQ5_0), true}},
    {7, {"Q5_1", kQK5_1, sizeof(BlockQ5_1), true}},
    {8, {"Q8_0", kQK8_0, sizeof(BlockQ8_0), true}},
    {9, {"Q8_1", kQK8_1, sizeof(BlockQ8_1), false}},
    {10, {"Q2_K", kQK_K, sizeof(BlockQ2_K), true}},
    {11, {"Q3_K", kQK_K, sizeof(BlockQ3_K), true}},
    {12, {"Q4_K", kQK_K, sizeof(BlockQ4_K), true}},
    {13, {"Q5_K", kQK_K, sizeof(BlockQ5_K), true}},
    {14, {"Q6_K", kQK_K, sizeof(BlockQ6_K), true}},
    {15, {"Q8_K", kQK_K, sizeof(BlockQ8_K), false}},
    {30, {"BF16", 1, 2, true}},
};

}  // namespace

const GgmlTypeTraits* GetGgmlTypeTraits(uint32_t type_id) {
  for (const Entry& e : kTypes) {
    if (e.id == type_id) return &e.traits;
  }
  return nullptr;
}

int64_t RowBytes(GgmlType type, int64_t n) {
  const GgmlTypeTraits* t = GetGgmlTypeTraits(type);
  RESTKV_CHECK(t != nullptr) << "type " << static_cast<uint32_t>(type);
  RESTKV_CHECK_EQ(n % t->block_size, 0);
  return n / t->block_size * t->type_size;
}

}  // namespace restkv::kernels
