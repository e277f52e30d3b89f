// A random layer of KV pages plus its contiguous copies, for the eviction
// kernel tests (test-only): K/V [Hkv][N][d] written into pages of the
// kernels/kv_dtype.h layout in any KvDtype, the window queries and W_O
// factors. For a dtype other than f32, k and v hold the values the pages
// store (each row encoded, then decoded), so a reference computed on them
// sees exactly what the kernels read.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cuda/eviction_launch.h"
#include "kernels/kv_dtype.h"

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
  KvDtype dtype;
  std::vector<float> k, v;                // [Hkv][N][d]
  std::vector<float> q_all;               // [N][H][d]
  std::vector<std::vector<float>> pages;  // ceil(N / bs) pages of layout().page_bytes()
  std::vector<float*> page_ptrs;

  RandomLayer(const LayerShape& s, uint32_t seed, float q_scale = 2.0f,
              KvDtype page_dtype = KvDtype::kF32)
      : shape(s), dtype(page_dtype) {
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
      : shape(other.shape),
        dtype(other.dtype),
        k(other.k),
        v(other.v),
        q_all(other.q_all),
        pages(other.pages) {
    for (auto& p : pages) page_ptrs.push_back(p.data());
  }
  RandomLayer& operator=(const RandomLayer&) = delete;

  [[nodiscard]] KvPageLayout layout() const {
    return {shape.kv_heads, shape.head_dim, shape.block_size, dtype};
  }

  // Rewrites the pages from k / v (and k / v with what the pages hold).
  void Repage() {
    const LayerShape& s = shape;
    const KvPageLayout l = layout();
    const int32_t num_pages = (s.num_tokens + s.block_size - 1) / s.block_size;
    // Bytes that no row or scale covers stay 0x55, so compaction that writes
    // outside its rows shows.
    pages.assign(num_pages, std::vector<float>(l.page_bytes() / sizeof(float)));
    page_ptrs.clear();
    for (auto& p : pages) {
      std::fill_n(reinterpret_cast<uint8_t*>(p.data()), l.page_bytes(), uint8_t{0x55});
      page_ptrs.push_back(p.data());
    }
    for (int32_t h = 0; h < s.kv_heads; ++h) {
      for (int32_t t = 0; t < s.num_tokens; ++t) {
        uint8_t* page = reinterpret_cast<uint8_t*>(pages[t / s.block_size].data());
        const int64_t row = l.RowIndex(h, t % s.block_size);
        float* kx = k.data() + (int64_t{h} * s.num_tokens + t) * s.head_dim;
        float* vx = v.data() + (int64_t{h} * s.num_tokens + t) * s.head_dim;
        float* scales = reinterpret_cast<float*>(page + (l.has_scales() ? l.k_scale_offset() : 0));
        float k_scale = 1.0f, v_scale = 1.0f;
        EncodeKvRow(dtype, kx, s.head_dim, page + row * l.row_bytes(), &k_scale);
        EncodeKvRow(dtype, vx, s.head_dim, page + l.v_offset() + row * l.row_bytes(), &v_scale);
        if (l.has_scales()) {
          scales[row] = k_scale;
          scales[l.rows_per_page() + row] = v_scale;
        }
        DecodeKvRow(dtype, page + row * l.row_bytes(), k_scale, s.head_dim, kx);
        DecodeKvRow(dtype, page + l.v_offset() + row * l.row_bytes(), v_scale, s.head_dim, vx);
      }
    }
  }

  [[nodiscard]] KvPages Pages() const {
    return KvPages{const_cast<float* const*>(page_ptrs.data()),
                   shape.num_tokens,
                   shape.kv_heads,
                   shape.block_size,
                   shape.head_dim,
                   dtype};
  }
  // Query rows [N - rows, N) as [rows][H][d].
  [[nodiscard]] const float* LastQueries(int32_t rows) const {
    return q_all.data() +
           static_cast<int64_t>(shape.num_tokens - rows) * shape.heads * shape.head_dim;
  }
  // The stored bytes of slot i of KV head h: K row, V row, then (q8_0) the
  // K and V scales.
  [[nodiscard]] std::vector<uint8_t> Slot(int32_t i, int32_t h) const {
    const KvPageLayout l = layout();
    const uint8_t* page = reinterpret_cast<const uint8_t*>(pages[i / shape.block_size].data());
    const int64_t row = l.RowIndex(h, i % shape.block_size);
    std::vector<uint8_t> out(page + row * l.row_bytes(), page + (row + 1) * l.row_bytes());
    const uint8_t* v = page + l.v_offset() + row * l.row_bytes();
    out.insert(out.end(), v, v + l.row_bytes());
    if (l.has_scales()) {
      const uint8_t* ks = page + l.k_scale_offset() + row * 4;
      const uint8_t* vs = page + l.v_scale_offset() + row * 4;
      out.insert(out.end(), ks, ks + 4);
      out.insert(out.end(), vs, vs + 4);
    }
    return out;
  }
};

}  // namespace restkv::kernels::cuda::testing
