// KvDtype and KvPageLayout: how K and V are stored in a KV page.
//
// A page holds `block_size` token slots of one layer for all KV heads. Its
// bytes, for every dtype:
//
//   [ K rows: Hkv][block_size][d] elements | V rows: same |
//     (q8_0 only) K scales: [Hkv][block_size] f32 | V scales: same ]
//
// padded to a multiple of 16 bytes so pages in one slab stay 16-byte aligned
// (the CUDA kernels load 16-byte vectors). One (token, head) row is `d`
// elements of the dtype:
//   kF32   4 bytes each, the value itself;
//   kF16   IEEE binary16, round to nearest even (kernels/fp16.h);
//   kBf16  bfloat16, round to nearest even;
//   kQ8_0  int8 q with one f32 scale per row: x ≈ q · scale,
//          scale = max|x| / 127, q = rint(x · (127 / max|x|)) (0 when the
//          row is all zero). Named after ggml's q8_0 (int8 + scale), but the
//          block is the whole head row, not 32 elements.
//
// NOTE(restkv): q8_0 with a per-(token, head) scale rather than fp8 e4m3:
// at the same 8 bits an int8 row with its own scale has a relative step of
// 1/127 of the row's largest value, fp8 e4m3 has 3 mantissa bits (1/8 relative
// step) and needs a scale anyway for keys whose range exceeds 448; int8 also
// widens to f32 with one instruction on AVX-512 and needs no hardware fp8 on
// the GPU. The scale is f32 (4 bytes per 64-element row, 6 %) so the
// quantiser is the same rounding on the host and the device.
//
// Pointers to pages are typed `float*` across the Backend contract for
// history; they are page base addresses and only the offsets below may be
// used to reach rows and scales.
//
// Thread safety: everything here is pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace restkv::kernels {

enum class KvDtype : int32_t { kF32 = 0, kF16 = 1, kBf16 = 2, kQ8_0 = 3 };

// "f32", "f16", "bf16", "q8_0".
[[nodiscard]] std::string_view KvDtypeName(KvDtype dtype);
// The dtype named `name` (the names above), or nullopt.
[[nodiscard]] std::optional<KvDtype> KvDtypeFromName(std::string_view name);
// Bytes of one element (the scale of a q8_0 row not included).
[[nodiscard]] int32_t KvElementBytes(KvDtype dtype);
// Relative rounding error bound of one stored element against its f32 value:
// 2^-11 (f16), 2^-8 (bf16), 0 (f32). For q8_0 the error is absolute,
// <= scale / 2 = max|row| / 254; this returns 1/254 relative to the row max.
[[nodiscard]] double KvUnitRoundoff(KvDtype dtype);

struct KvPageLayout {
  int32_t kv_heads = 0;  // Hkv
  int32_t head_dim = 0;  // d
  int32_t block_size = 16;
  KvDtype dtype = KvDtype::kF32;

  [[nodiscard]] bool has_scales() const { return dtype == KvDtype::kQ8_0; }
  // Bytes of one (token, head) row of K or V.
  [[nodiscard]] int64_t row_bytes() const {
    return static_cast<int64_t>(head_dim) * KvElementBytes(dtype);
  }
  // Rows of K (or of V) in a page.
  [[nodiscard]] int64_t rows_per_page() const {
    return static_cast<int64_t>(kv_heads) * block_size;
  }
  // Byte offset of the V rows in a page.
  [[nodiscard]] int64_t v_offset() const { return rows_per_page() * row_bytes(); }
  // Byte offsets of the K and V scale arrays [Hkv][block_size] (q8_0 only).
  [[nodiscard]] int64_t k_scale_offset() const { return 2 * v_offset(); }
  [[nodiscard]] int64_t v_scale_offset() const { return k_scale_offset() + rows_per_page() * 4; }
  [[nodiscard]] int64_t page_bytes() const {
    const int64_t raw = 2 * v_offset() + (has_scales() ? 2 * rows_per_page() * 4 : 0);
    return (raw + 15) / 16 * 16;
  }
  // Row index of (head, slot) within the K (or V) rows and scales.
  [[nodiscard]] int64_t RowIndex(int32_t head, int32_t slot) const {
    return static_cast<int64_t>(head) * block_size + slot;
  }
  // KV cache bytes per token of one layer (K and V, every KV head, scales
  // included, page padding not).
  [[nodiscard]] int64_t bytes_per_token() const {
    return 2LL * kv_heads * (row_bytes() + (has_scales() ? 4 : 0));
  }
};

// Stores one row x[d] as `dtype` into `dst` (row_bytes of the layout);
// `scale` receives the q8_0 scale (untouched for other dtypes).
void EncodeKvRow(KvDtype dtype, const float* x, int32_t d, void* dst, float* scale);
// x[d] = the stored row `src` as f32 (scale used by q8_0 only).
void DecodeKvRow(KvDtype dtype, const void* src, float scale, int32_t d, float* x);

}  // namespace restkv::kernels
