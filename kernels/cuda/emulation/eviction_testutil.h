// A random layer of KV pages plus its contiguous copies, for the eviction
// kernel tests (test-only): K/V [Hkv][N][d] written into pages of the
// kernels/backend.h layout, the window queries and W_O factors.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cuda/eviction_launch.h"

namespace restkv::kernels::cuda::testing {

struct LayerShape {
  int32_t num_tokens;
  int32_t heads;
  int32_t kv_heads;
  int32_t head_dim;
  int32_t block_size;
};

struct RandomLayer {
  LayerShape shape;
  std::vector<float> k, v;                // [Hkv][N][d]
  std::vector<float> q_all;               // [N][H][d]
  std::vector<std::vector<float>> pages;  // ceil(N / bs) pages
  std::vector<float*> page_ptrs;

  RandomLayer(const LayerShape& s, uint32_t seed, float q_scale = 2.0f) : shape(s) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    const int64_t kv = static_cast<int64_t>(s.kv_heads) * s.num_tokens * s.head_dim;
    k.resize(kv);
    v.resize(kv);
    for (float& x : k) x = dist(rng);
    for (float& x : v) x = dist(rng);
    // A few tokens every query attends to (sinks), as in real layers.
    for (int32_t h = 0; h < s.kv_heads; ++h) {
      for (int32_t t : {0, s.num_tokens / 3}) {
        for (int32_t i = 0; i < s.head_dim; ++i)
          k[(int64_t{h} * s.num_tokens + t) * s.head_dim + i] *= 3.0f;
      }
    }
    q_all.resize(static_cast<size_t>(s.num_tokens) * s.heads * s.head_dim);
    for (float& x : q_all) x = q_scale * dist(rng);
    Repage();
  }

  // Copies own their pages (page_ptrs point into the copy).
  RandomLayer(const RandomLayer& other)
      : shape(other.shape), k(other.k), v(other.v), q_all(other.q_all), pages(other.pages) {
    for (auto& p : pages) page_ptrs.push_back(p.data());
  }
  RandomLayer& operator=(const RandomLayer&) = delete;

  // Rewrites the pages from k / v.
  void Repage() {
    const LayerShape& s = shape;
    const int32_t num_pages = (s.num_tokens + s.block_size - 1) / s.block_size;
    const int64_t half = static_cast<int64_t>(s.kv_heads) * s.block_size * s.head_dim;
    pages.assign(num_pages, std::vector<float>(2 * half, -777.0f));
    page_ptrs.clear();
    for (auto& p : pages) page_ptrs.push_back(p.data());
    for (int32_t h = 0; h < s.kv_heads; ++h) {
      for (int32_t t = 0; t < s.num_tokens; ++t) {
        float* dst = pages[t / s.block_size].data() +
                     (int64_t{h} * s.block_size + t % s.block_size) * s.head_dim;
        const int64_t src = (int64_t{h} * s.num_tokens + t) * s.head_dim;
        for (int32_t i = 0; i < s.head_dim; ++i) {
          dst[i] = k[src + i];
          dst[half + i] = v[src + i];
        }
      }
    }
  }

  [[nodiscard]] KvPages Pages() const {
    return KvPages{const_cast<float* const*>(page_ptrs.data()), shape.num_tokens, shape.kv_heads,
                   shape.block_size, shape.head_dim};
  }
  // Query rows [N - rows, N) as [rows][H][d].
  [[nodiscard]] const float* LastQueries(int32_t rows) const {
    return q_all.data() +
           static_cast<int64_t>(shape.num_tokens - rows) * shape.heads * shape.head_dim;
  }
  // Slot i of KV head h as [K | V] of d floats each.
  [[nodiscard]] std::vector<float> Slot(int32_t i, int32_t h) const {
    const LayerShape& s = shape;
    const int64_t half = static_cast<int64_t>(s.kv_heads) * s.block_size * s.head_dim;
    const float* src = pages[i / s.block_size].data() +
                       (int64_t{h} * s.block_size + i % s.block_size) * s.head_dim;
    std::vector<float> out(src, src + s.head_dim);
    out.insert(out.end(), src + half, src + half + s.head_dim);
    return out;
  }
};

}  // namespace restkv::kernels::cuda::testing
