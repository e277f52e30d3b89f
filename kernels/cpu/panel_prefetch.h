// Software prefetch for the panel tiles (packed_gemm.cc, packed_gemm_avx2.cc,
// kquant_tile.h).
//
// Decode multiplies every weight once per token, so its matmuls stream the
// panels from memory with little arithmetic per byte, and they were bound by
// memory latency, not bandwidth: the hardware prefetchers stop at 4 KiB page
// boundaries and do not run far enough ahead of the tile's 300–3400-byte
// steps. Each step of a tile therefore asks for the bytes a fixed distance
// ahead of the ones it reads, covering the panel's stream exactly once.
// Measured on the 1.2B shape, 2 threads (docs/results.md): decode +40–50 %.
// Included only by the tile sources.
#pragma once

#include <cstdint>

namespace restkv::kernels::cpu::packed_detail {

// Bytes ahead of the current step; 2–4 K-quant super-blocks measured alike.
constexpr int64_t kPanelPrefetchDistance = 6144;

// Prefetches [p + kPanelPrefetchDistance, + kBytes) into the cache, one
// request per 64-byte line (p is 64-byte aligned in every panel).
template <int64_t kBytes>
inline void PrefetchPanelAhead(const uint8_t* p) {
#pragma GCC unroll 16
  for (int64_t at = 0; at < kBytes; at += 64) __builtin_prefetch(p + kPanelPrefetchDistance + at);
}

}  // namespace restkv::kernels::cpu::packed_detail
