#include "kernels/cpu/cpu_backend.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"
#include "common/check.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/packed_gemm.h"
#include "kernels/cpu/quant_dot.h"
#include "kernels/cpu/quantize_ref.h"
#include "kernels/cpu/vec_math.h"

namespace restkv::kernels::cpu {
namespace {

class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(size_t bytes)
      : bytes_(bytes), data_(new (std::nothrow) float[(bytes + 3) / 4]) {}
  void* data() override { return data_.get(); }
  size_t size_bytes() const override { return bytes_; }
  bool ok() const { return data_ != nullptr; }

 private:
  size_t bytes_;
  std::unique_ptr<float[]> data_;
};

// Rows of the weight matrix each task takes; keeps a slice of W in L2 while
// a tile of activations streams past it.
constexpr int64_t kRowGrain = 16;

}  // namespace

CpuBackend::CpuBackend(int num_threads, bool pack_weights)
    : pool_(num_threads), pack_weights_(pack_weights), isa_(KernelIsaFromEnvironment()) {
  // Our pool splits the work; OpenBLAS threads inside a slice would only
  // fight it for the same cores.
  openblas_set_num_threads(1);
}

CpuBackend::~CpuBackend() = default;

absl::StatusOr<std::unique_ptr<Buffer>> CpuBackend::Allocate(size_t bytes) {
  auto buf = std::make_unique<HostBuffer>(bytes);
  if (!buf->ok()) {
    return absl::ResourceExhaustedError(absl::StrFormat("cannot allocate %d bytes", bytes));
  }
  return buf;
}

absl::StatusOr<Matrix> CpuBackend::PrepareMatrix(GgmlType type, int64_t rows, int64_t cols,
                                                 const void* host) {
  const GgmlTypeTraits* traits = GetGgmlTypeTraits(type);
  if (traits == nullptr || !traits->supported) {
    return absl::UnimplementedError(
        absl::StrFormat("CPU backend cannot use weights of type id %d", static_cast<int>(type)));
  }
  if (cols % traits->block_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("row length %d is not a multiple of the %s block size %d", cols,
                        traits->name, traits->block_size));
  }
  if (type == GgmlType::kF32 || HasQuantDot(type)) {
    return WithPacked(Matrix{type, rows, cols, host});
  }
  const int64_t src_row_bytes = RowBytes(type, cols);
  const auto* src = static_cast<const uint8_t*>(host);
  if (type == GgmlType::kF16 || type == GgmlType::kBF16) {
    // Widen to F32: exact, and these files are small enough for it.
    auto dst = std::make_unique<uint8_t[]>(static_cast<size_t>(rows * cols) * sizeof(float));
    auto* f = reinterpret_cast<float*>(dst.get());
    pool_.ParallelFor(rows, [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r) {
        DequantizeRow(type, src + r * src_row_bytes, f + r * cols, cols);
      }
    });
    owned_.push_back(std::move(dst));
    return Matrix{GgmlType::kF32, rows, cols, owned_.back().get()};
  }
  if (pack_weights_ && isa_.has_value() && HasPackedGemm(type, *isa_)) {
    // K-quants with a panel kernel: packed at their own precision.
    return WithPacked(Matrix{type, rows, cols, host});
  }
  // The rest: repack to Q8_0 so the integer kernels apply.
  // NOTE(restkv): this adds one 8-bit rounding on top of the file's own
  // quantisation (and nearly doubles the bytes of a K-quant).
  if (cols % kQK8_0 != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("row length %d is not a multiple of 32", cols));
  }
  const int64_t dst_row_bytes = RowBytes(GgmlType::kQ8_0, cols);
  auto dst = std::make_unique<uint8_t[]>(static_cast<size_t>(rows * dst_row_bytes));
  uint8_t* dst_ptr = dst.get();
  pool_.ParallelFor(rows, [&](int64_t r0, int64_t r1, int) {
    std::vector<float> row(cols);
    for (int64_t r = r0; r < r1; ++r) {
      DequantizeRow(type, src + r * src_row_bytes, row.data(), cols);
      QuantizeRowQ8_0(row.data(), reinterpret_cast<BlockQ8_0*>(dst_ptr + r * dst_row_bytes), cols);
    }
  });
  owned_.push_back(std::move(dst));
  return WithPacked(Matrix{GgmlType::kQ8_0, rows, cols, owned_.back().get()});
}

Matrix CpuBackend::WithPacked(Matrix m) {
  if (pack_weights_ && isa_.has_value() && HasPackedGemm(m.type, *isa_)) {
    packed_.push_back(PackedWeights::Pack(m.type, m.rows, m.cols, m.data, pool_, *isa_));
    m.packed = packed_.back().get();
  }
  return m;
}

absl::StatusOr<const float*> CpuBackend::PrepareVector(GgmlType type, int64_t n, const void* host) {
  const GgmlTypeTraits* traits = GetGgmlTypeTraits(type);
  if (traits == nullptr || !traits->supported || n % traits->block_size != 0) {
    return absl::UnimplementedError(
        absl::StrFormat("CPU backend cannot use a vector of type id %d", static_cast<int>(type)));
  }
  if (type == GgmlType::kF32) return static_cast<const float*>(host);
  auto dst = std::make_unique<uint8_t[]>(static_cast<size_t>(n) * sizeof(float));
  DequantizeRow(type, host, reinterpret_cast<float*>(dst.get()), n);
  owned_.push_back(std::move(dst));
  return reinterpret_cast<const float*>(owned_.back().get());
}

void CpuBackend::CopyToHost(const float* src, float* dst, size_t n) {
  std::memcpy(dst, src, n * sizeof(float));
}

void CpuBackend::CopyFromHost(const float* src, float* dst, size_t n) {
  std::memcpy(dst, src, n * sizeof(float));
}

void CpuBackend::CopyDevice(const float* src, float* dst, size_t n) {
  std::memmove(dst, src, n * sizeof(float));
}

void CpuBackend::GatherRows(const float* src, const int64_t* rows, int64_t num_rows, int64_t width,
                            float* dst) {
  for (int64_t i = 0; i < num_rows; ++i) {
    std::memcpy(dst + i * width, src + rows[i] * width, width * sizeof(float));
  }
}

void CpuBackend::MatMul(const Matrix& w, const float* x, int64_t m, float* y) {
  if (m <= 0) return;
  if (w.type == GgmlType::kF32) {
    MatMulF32(w, x, m, y);
  } else {
    MatMulQuantized(w, x, m, y);
  }
}

void CpuBackend::MatMulF32(const Matrix& w, const float* x, int64_t m, float* y) {
  const auto* wf = static_cast<const float*>(w.data);
  pool_.ParallelFor(
      w.rows,
      [&](int64_t r0, int64_t r1, int) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m),
                    static_cast<int>(r1 - r0), static_cast<int>(w.cols), 1.0f, x,
                    static_cast<int>(w.cols), wf + r0 * w.cols, static_cast<int>(w.cols), 0.0f,
                    y + r0, static_cast<int>(w.rows));
      },
      kRowGrain);
}

void CpuBackend::MatMulQuantized(const Matrix& w, const float* x, int64_t m, float* y) {
  RESTKV_CHECK(w.packed != nullptr || HasQuantDot(w.type)) << static_cast<int>(w.type);
  x_q8_.Resize(m, w.cols);
  pool_.ParallelFor(m, [&](int64_t r0, int64_t r1, int) { x_q8_.QuantizeRows(x, r0, r1); });
  if (w.packed != nullptr) {
    static_cast<const PackedWeights*>(w.packed)->MatMul(x_q8_, m, y, pool_);
    return;
  }
  const int64_t row_bytes = RowBytes(w.type, w.cols);
  const auto* wbytes = static_cast<const uint8_t*>(w.data);
  pool_.ParallelFor(
      w.rows,
      [&](int64_t r0, int64_t r1, int) {
        int64_t xrows[4];
        float out[8];
        // Tiles of up to 2 weight rows x 4 activation rows: each unpacked
        // weight block serves 4 rows and each activation block 2.
        for (int64_t t0 = 0; t0 < m; t0 += 4) {
          const int tile = static_cast<int>(std::min<int64_t>(4, m - t0));
          for (int i = 0; i < tile; ++i) xrows[i] = t0 + i;
          for (int64_t r = r0; r < r1; r += 2) {
            const int nw = static_cast<int>(std::min<int64_t>(2, r1 - r));
            DotTile(w.type, wbytes + r * row_bytes, row_bytes, nw, x_q8_, xrows, tile, out);
            for (int k = 0; k < nw; ++k) {
              for (int i = 0; i < tile; ++i) y[(t0 + i) * w.rows + r + k] = out[k * tile + i];
            }
          }
        }
      },
      kRowGrain);
}

void CpuBackend::Embedding(const Matrix& table, const int32_t* ids, int64_t m, float* out) {
  const int64_t row_bytes = RowBytes(table.type, table.cols);
  const auto* base = static_cast<const uint8_t*>(table.data);
  for (int64_t i = 0; i < m; ++i) {
    RESTKV_CHECK(ids[i] >= 0 && ids[i] < table.rows) << "token id " << ids[i];
    DequantizeRow(table.type, base + ids[i] * row_bytes, out + i * table.cols, table.cols);
  }
}

void CpuBackend::RmsNorm(const float* x, const float* weight, int64_t m, int64_t n, float eps,
                         float* y) {
  pool_.ParallelFor(m, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * n;
      float* yr = y + r * n;
      double sum = 0.0;  // double, as ggml does, so long rows do not lose bits
      for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(xr[i]) * xr[i];
      const float scale = 1.0f / std::sqrt(static_cast<float>(sum / n) + eps);
      for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * scale * weight[i];
    }
  });
}

void CpuBackend::AddBias(float* x, const float* bias, int64_t m, int64_t n) {
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t i = 0; i < n; ++i) x[r * n + i] += bias[i];
  }
}

void CpuBackend::Add(float* x, const float* y, int64_t n) { AxpyF32(1.0f, y, x, n); }

void CpuBackend::Rope(float* x, const int32_t* positions, int64_t m, int32_t heads,
                      int32_t head_dim, const RopeParams& p) {
  const int32_t rot = p.rot_dims > 0 ? p.rot_dims : head_dim;
  const int32_t half = rot / 2;
  // theta_i = pos · base^(-2i/rot), built by repeated multiplication like
  // ggml so angles match llama.cpp bit for bit at long positions.
  const float theta_scale = std::pow(p.theta_base, -2.0f / static_cast<float>(rot));
  pool_.ParallelFor(m, [&](int64_t t0, int64_t t1, int) {
    std::vector<float> cos_t(half), sin_t(half);
    for (int64_t t = t0; t < t1; ++t) {
      float theta = static_cast<float>(positions[t]);
      for (int32_t i = 0; i < half; ++i) {
        float angle = theta * p.position_scale;
        if (p.freq_factors != nullptr) angle /= p.freq_factors[i];
        cos_t[i] = std::cos(angle);
        sin_t[i] = std::sin(angle);
        theta *= theta_scale;
      }
      for (int32_t h = 0; h < heads; ++h) {
        float* v = x + (t * heads + h) * head_dim;
        for (int32_t i = 0; i < half; ++i) {
          const int32_t a = p.style == RopeStyle::kNorm ? 2 * i : i;
          const int32_t b = p.style == RopeStyle::kNorm ? 2 * i + 1 : i + half;
          const float x0 = v[a], x1 = v[b];
          v[a] = x0 * cos_t[i] - x1 * sin_t[i];
          v[b] = x0 * sin_t[i] + x1 * cos_t[i];
        }
      }
    }
  });
}

void CpuBackend::SwiGlu(float* gate, const float* up, int64_t n) {
  pool_.ParallelFor(
      n, [&](int64_t i0, int64_t i1, int) { SiluMulF32(gate + i0, up + i0, i1 - i0); }, 256);
}

void CpuBackend::StoreKv(const float* k, const float* v, const KvSlot* slots, int64_t m,
                         const KvPageLayout& kv) {
  const int32_t kv_heads = kv.kv_heads, head_dim = kv.head_dim;
  const int64_t row_bytes = kv.row_bytes();
  for (int64_t t = 0; t < m; ++t) {
    RESTKV_CHECK(slots[t].row >= 0 && slots[t].row < kv.block_size) << slots[t].row;
    auto* page = reinterpret_cast<uint8_t*>(slots[t].page);
    auto* k_scales = reinterpret_cast<float*>(page + kv.k_scale_offset());
    auto* v_scales = reinterpret_cast<float*>(page + kv.v_scale_offset());
    for (int32_t h = 0; h < kv_heads; ++h) {
      const int64_t row = kv.RowIndex(h, slots[t].row);
      // Scales are only written (and only exist) for q8_0 pages.
      EncodeKvRow(kv.dtype, k + (t * kv_heads + h) * head_dim, head_dim, page + row * row_bytes,
                  kv.has_scales() ? &k_scales[row] : nullptr);
      EncodeKvRow(kv.dtype, v + (t * kv_heads + h) * head_dim, head_dim,
                  page + kv.v_offset() + row * row_bytes,
                  kv.has_scales() ? &v_scales[row] : nullptr);
    }
  }
}

void CpuBackend::Attention(const float* q, absl::Span<const AttentionSeq> seqs, int32_t heads,
                           const KvPageLayout& kv, float scale, float* out) {
  PagedAttention(pool_, q, seqs, heads, kv, scale, out);
}

}  // namespace restkv::kernels::cpu
