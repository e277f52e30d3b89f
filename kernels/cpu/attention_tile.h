// The attention tile: `rows` query vectors that share one KV head, against
// that head's paged K/V, with an online (blocked) softmax. Written once over
// the vector traits of attention_vec.h (AVX-512 or AVX2), for head_dim =
// kDim and pages of dtype DT; rows are widened to f32 in registers as they
// are loaded, and a q8_0 row's scale multiplies its dot product and its
// weight.
//
// Keys are visited in blocks of kKeyBlock at absolute positions; within a
// block every row scores its visible keys (query in registers, kLanes scores
// per transposing reduction), rescales its accumulator to the new running
// max and adds its weighted V rows. A block's K and V (32 KiB at d = 64 in
// f32) stay in L1 while all rows of the tile pass over them, so long
// contexts stream K/V from memory once per tile instead of once per query
// row and head. A row's arithmetic does not depend on the other rows of the
// tile, so a row computed alone (decode) equals the same row in a prefill
// chunk, bit for bit.
// Included only by attention.cc.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/backend.h"

namespace restkv::kernels::cpu {

// Keys per block of the online softmax. Also the block of sparse prefill.
constexpr int32_t kKeyBlock = 64;

// Per-row running state of the online softmax.
struct RowState {
  float max = -std::numeric_limits<float>::infinity();
  float sum = 0.0f;
};

// The q8_0 scale of row (kvh, slot) of K (or V); 1 for other dtypes.
inline float KvScale(const float* page, const KvPageLayout& kv, int32_t kvh, int32_t slot, bool v) {
  if (!kv.has_scales()) return 1.0f;
  const auto* base = reinterpret_cast<const uint8_t*>(page);
  return reinterpret_cast<const float*>(
      base + (v ? kv.v_scale_offset() : kv.k_scale_offset()))[kv.RowIndex(kvh, slot)];
}

// out[r] = attention of q[r] over keys [0, visible[r]) of KV head kvh, for
// r < rows. scores: kKeyBlock floats; acc: rows·kDim floats; state: rows.
// Sparse prefill: where keep[r] is set, key blocks below local_from[r]
// whose flag is 0 are skipped.
template <typename V, int kDim, KvDtype DT>
void AttendTile(int32_t rows, const float* const* q, float* const* out, const int32_t* visible,
                const float* const* pages, int32_t kvh, const KvPageLayout& kv, float scale,
                float* scores, float* acc, RowState* state, const uint8_t* const* keep,
                const int32_t* local_from) {
  using F = typename V::F;
  constexpr int kLanes = V::kLanes;
  constexpr int NV = kDim / kLanes;
  static_assert(kDim % kLanes == 0 && kKeyBlock % kLanes == 0);
  constexpr int64_t kRowBytes = kDim * (DT == KvDtype::kF32 ? 4 : DT == KvDtype::kQ8_0 ? 1 : 2);
  const int32_t block_size = kv.block_size;
  const int64_t head_offset = static_cast<int64_t>(kvh) * block_size * kRowBytes;
  const int64_t page_v_offset = kv.v_offset();
  int32_t max_visible = 0;
  for (int32_t r = 0; r < rows; ++r) {
    max_visible = std::max(max_visible, visible[r]);
    state[r] = RowState{};
    std::fill(acc + r * kDim, acc + (r + 1) * kDim, 0.0f);
  }
  for (int32_t kb = 0; kb < max_visible; kb += kKeyBlock) {
    for (int32_t r = 0; r < rows; ++r) {
      const int32_t n = std::min(kb + kKeyBlock, visible[r]) - kb;
      if (n <= 0) continue;
      // Sparse prefill: a block outside the row's pattern is skipped whole.
      if (keep != nullptr && keep[r] != nullptr && kb / kKeyBlock < local_from[r] &&
          keep[r][kb / kKeyBlock] == 0) {
        continue;
      }
      F qr[NV];
      for (int v = 0; v < NV; ++v) qr[v] = V::Load(q[r] + kLanes * v);
      F max_v = V::Set1(-std::numeric_limits<float>::infinity());
      const F scale_v = V::Set1(scale);
      // Keys in groups of kLanes at absolute positions kb + kLanes·m:
      // kLanes dot-product vectors, then one reduction gives their scores.
      for (int32_t i = 0; i < n; i += kLanes) {
        const int32_t m = std::min(kLanes, n - i);
        int32_t page = (kb + i) / block_size, slot = (kb + i) % block_size;
        F dots[kLanes];
        for (int32_t e = 0; e < m; ++e) {
          const uint8_t* k =
              reinterpret_cast<const uint8_t*>(pages[page]) + head_offset + slot * kRowBytes;
          F dot = V::Mul(qr[0], V::template LoadRow<DT>(k, 0));
          for (int v = 1; v < NV; ++v) dot = V::FMAdd(qr[v], V::template LoadRow<DT>(k, v), dot);
          if constexpr (DT == KvDtype::kQ8_0) {
            dot = V::Mul(dot, V::Set1(KvScale(pages[page], kv, kvh, slot, false)));
          }
          dots[e] = dot;
          if (++slot == block_size) {
            slot = 0;
            ++page;
          }
        }
        for (int32_t e = m; e < kLanes; ++e) dots[e] = V::Zero();
        max_v = V::StoreScores(scores + i, V::Mul(V::SumLanes(dots), scale_v), m, max_v);
      }
      const float block_max = V::ReduceMax(max_v);
      RowState& st = state[r];
      const float new_max = std::max(st.max, block_max);
      const float correction = std::exp(st.max - new_max);  // 0 for the first block
      st.sum = st.sum * correction + V::SoftmaxNumerators(scores, n, new_max);
      st.max = new_max;
      float* a = acc + r * kDim;
      F ar[NV];
      const F c = V::Set1(correction);
      for (int v = 0; v < NV; ++v) ar[v] = V::Mul(V::Load(a + kLanes * v), c);
      for (int32_t i = 0, t = kb; i < n;) {
        const int32_t in_page = std::min(n - i, block_size - t % block_size);
        const float* page = pages[t / block_size];
        const uint8_t* vr = reinterpret_cast<const uint8_t*>(page) + page_v_offset + head_offset +
                            (t % block_size) * kRowBytes;
        for (int32_t e = 0; e < in_page; ++e, vr += kRowBytes) {
          float weight = scores[i + e];
          if constexpr (DT == KvDtype::kQ8_0) {
            weight *= KvScale(page, kv, kvh, (t % block_size) + e, true);
          }
          const F w = V::Set1(weight);
          for (int v = 0; v < NV; ++v) ar[v] = V::FMAdd(w, V::template LoadRow<DT>(vr, v), ar[v]);
        }
        i += in_page;
        t += in_page;
      }
      for (int v = 0; v < NV; ++v) V::Store(a + kLanes * v, ar[v]);
    }
  }
  for (int32_t r = 0; r < rows; ++r) {
    const F inv = V::Set1(1.0f / state[r].sum);
    for (int v = 0; v < NV; ++v) {
      V::Store(out[r] + kLanes * v, V::Mul(V::Load(acc + r * kDim + kLanes * v), inv));
    }
  }
}

}  // namespace restkv::kernels::cpu
