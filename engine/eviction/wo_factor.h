// Per-head factor of the output projection for the ReST-KV distance
// (spec §2.3): ||W_O^h x||_2 = ||R_h x||_2 with R_h upper triangular and
// R_h^T R_h = G_h = W_O^h^T W_O^h, so scoring costs M*d^2 per head instead of
// projecting every value into the hidden size D.
//
// Computed once per model load and layer (D*d^2 per head); memory L*H*d^2
// floats (SmolLM2-135M 4.4 MB, Llama-3-8B 67 MB).
#pragma once

#include <cstdint>
#include <vector>

#include "common/thread_pool.h"

namespace restkv::engine {

// R_h for every query head of one layer: [H][d][d], row-major, zeros below the
// diagonal. wo: the layer's output projection [D][H*d] in fp32 (row r holds
// hidden unit r; head h owns columns h*d .. h*d+d-1).
//
// The Gram matrix is formed and factored in double. A rank-deficient W_O^h
// (zero or repeated columns, D < d) gives a positive semi-definite G_h: a
// pivot at or below 1e-12 * max(diag G_h) ends its row of R at zero, which
// keeps R^T R = G_h exact for such columns (no jitter needed).
// pool: may be null; heads are spread over it.
std::vector<float> ComputeWoFactor(const float* wo, int32_t hidden, int32_t num_heads,
                                   int32_t head_dim, ThreadPool* pool = nullptr);

}  // namespace restkv::engine
