#include "kernels/cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/check.h"
#include "common/status_macros.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cuda/cuda_error.h"
#include "kernels/cuda/launch.h"
#include "kernels/fp16.h"

namespace restkv::kernels::cuda {
namespace {

static_assert(sizeof(KvSlot) == sizeof(DeviceKvSlot));
static_assert(offsetof(KvSlot, page) == offsetof(DeviceKvSlot, page));
static_assert(offsetof(KvSlot, row) == offsetof(DeviceKvSlot, row));

class DeviceBuffer final : public Buffer {
 public:
  DeviceBuffer(DeviceMemory mem, size_t bytes, std::shared_ptr<int64_t> allocated)
      : mem_(std::move(mem)), bytes_(bytes), allocated_(std::move(allocated)) {}
  ~DeviceBuffer() override { *allocated_ -= static_cast<int64_t>(mem_.bytes()); }
  void* data() override { return mem_.get(); }
  size_t size_bytes() const override { return bytes_; }

 private:
  DeviceMemory mem_;
  size_t bytes_;
  std::shared_ptr<int64_t> allocated_;
};

// Split-K scratch is capped so a large batch never asks for much memory; the
// number of splits shrinks instead.
constexpr int64_t kMaxPartialBytes = int64_t{256} << 20;
constexpr int32_t kMaxSplits = 32;
// Keys a split should at least cover, so the combine step stays cheap.
constexpr int32_t kMinKeysPerSplit = 256;

}  // namespace

CudaBackend::StreamOwner::~StreamOwner() {
  if (stream != nullptr) cudaStreamDestroy(stream);
}

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(
    const CudaBackendOptions& options) {
  const int count = DeviceCount();
  if (options.device < 0 || options.device >= count) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "CUDA device %d is not available (%d device(s) found)", options.device, count));
  }
  if (options.host_threads < 1) return absl::InvalidArgumentError("host_threads must be >= 1");
  RESTKV_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(options.device), "cudaSetDevice"));
  const DeviceInfo info = GetDeviceInfo(options.device);
  cudaStream_t stream = nullptr;
  RESTKV_RETURN_IF_ERROR(
      CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate"));
  cublasHandle_t cublas = nullptr;
  if (const cublasStatus_t st = cublasCreate(&cublas); st != CUBLAS_STATUS_SUCCESS) {
    cudaStreamDestroy(stream);
    return absl::InternalError(absl::StrCat("cublasCreate: ", CublasStatusName(st)));
  }
  // Tensor cores for bf16 with fp32 accumulation; no reduced-precision
  // reductions.
  if (const cublasStatus_t st = cublasSetMathMode(cublas, CUBLAS_DEFAULT_MATH);
      st != CUBLAS_STATUS_SUCCESS) {
    cublasDestroy(cublas);
    cudaStreamDestroy(stream);
    return absl::InternalError(absl::StrCat("cublasSetMathMode: ", CublasStatusName(st)));
  }
  return std::unique_ptr<CudaBackend>(new CudaBackend(options, info, stream, cublas));
}

CudaBackend::CudaBackend(const CudaBackendOptions& options, const DeviceInfo& info,
                         cudaStream_t stream, cublasHandle_t cublas)
    : options_(options),
      info_(info),
      stream_owner_{stream},
      stream_(stream),
      cublas_(cublas),
      pool_(options.host_threads),
      act_bf16_(stream),
      attn_partials_(stream),
      sparse_patterns_(stream),
      uploads_(stream) {}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(stream_);
  cublasDestroy(cublas_);
}

void CudaBackend::Synchronize() {
  if (!Bind()) return;
  Record(CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"));
}

bool CudaBackend::Bind() {
  if (!status_.ok()) return false;
  if (options_.device != 0) Record(CudaStatus(cudaSetDevice(options_.device), "cudaSetDevice"));
  return status_.ok();
}

bool CudaBackend::Record(absl::Status status) {
  if (status_.ok() && !status.ok()) status_ = std::move(status);
  return status_.ok();
}

absl::Status CudaBackend::Reserve(size_t bytes) {
  if (options_.memory_limit > 0 &&
      *allocated_ + static_cast<int64_t>(bytes) > options_.memory_limit) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("device memory limit: %d bytes requested, %d of %d in use", bytes,
                        *allocated_, options_.memory_limit));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Buffer>> CudaBackend::Allocate(size_t bytes) {
  if (!Bind()) return status_;
  RESTKV_RETURN_IF_ERROR(Reserve(bytes));
  void* ptr = nullptr;
  const size_t alloc = std::max<size_t>(bytes, 16);
  if (const cudaError_t err = cudaMalloc(&ptr, alloc); err != cudaSuccess) {
    cudaGetLastError();
    return CudaStatus(err, absl::StrFormat("cudaMalloc(%d bytes)", bytes));
  }
  *allocated_ += static_cast<int64_t>(alloc);
  return std::make_unique<DeviceBuffer>(DeviceMemory(ptr, alloc), bytes, allocated_);
}

absl::StatusOr<std::unique_ptr<Buffer>> CudaBackend::EvictionMemory::Allocate(size_t bytes) {
  return backend_.Allocate(bytes);
}

absl::Status CudaBackend::EvictionMemory::Copy(void* dst, const void* src, size_t bytes,
                                               cudaMemcpyKind kind, const char* what) {
  if (!backend_.Bind()) return backend_.status_;
  RESTKV_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpyAsync(dst, src, bytes, kind, backend_.stream_), what));
  // The host side may be reused as soon as this returns.
  return CudaStatus(cudaStreamSynchronize(backend_.stream_), what);
}

absl::Status CudaBackend::EvictionMemory::Upload(const void* host, void* device, size_t bytes) {
  return Copy(device, host, bytes, cudaMemcpyHostToDevice, "eviction upload");
}

absl::Status CudaBackend::EvictionMemory::Download(const void* device, void* host, size_t bytes) {
  return Copy(host, device, bytes, cudaMemcpyDeviceToHost, "eviction download");
}

absl::StatusOr<void*> CudaBackend::AllocateOwned(size_t bytes) {
  RESTKV_RETURN_IF_ERROR(Reserve(bytes));
  void* ptr = nullptr;
  if (const cudaError_t err = cudaMalloc(&ptr, std::max<size_t>(bytes, 16)); err != cudaSuccess) {
    cudaGetLastError();
    return CudaStatus(err, absl::StrFormat("cudaMalloc(%d bytes)", bytes));
  }
  *allocated_ += static_cast<int64_t>(bytes);
  owned_.emplace_back(ptr, bytes);
  return ptr;
}

absl::StatusOr<Matrix> CudaBackend::PrepareMatrix(GgmlType type, int64_t rows, int64_t cols,
                                                  const void* host) {
  if (!Bind()) return status_;
  const GgmlTypeTraits* traits = GetGgmlTypeTraits(type);
  if (traits == nullptr || !traits->supported) {
    return absl::UnimplementedError(
        absl::StrFormat("CUDA backend cannot use weights of type id %d", static_cast<int>(type)));
  }
  if (rows <= 0 || cols <= 0 || cols % traits->block_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("matrix [%d][%d] of %s: bad shape (row length must be a multiple of %d)",
                        rows, cols, traits->name, traits->block_size));
  }
  RESTKV_ASSIGN_OR_RETURN(void* dev, AllocateOwned(static_cast<size_t>(rows * cols) * 2));
  // Dequantise and round to bf16 on the host in chunks of rows, uploading
  // each chunk synchronously (load time, not a hot path).
  const int64_t src_row_bytes = RowBytes(type, cols);
  const auto* src = static_cast<const uint8_t*>(host);
  const int64_t chunk_rows = std::max<int64_t>(1, (int64_t{32} << 20) / (cols * 2));
  std::vector<uint16_t> staging(static_cast<size_t>(std::min(rows, chunk_rows) * cols));
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t n = std::min(chunk_rows, rows - r0);
    pool_.ParallelFor(n, [&](int64_t a, int64_t b, int) {
      std::vector<float> row(static_cast<size_t>(cols));
      for (int64_t r = a; r < b; ++r) {
        DequantizeRow(type, src + (r0 + r) * src_row_bytes, row.data(), cols);
        uint16_t* dst = staging.data() + r * cols;
        for (int64_t c = 0; c < cols; ++c) dst[c] = FloatToBf16(row[c]);
      }
    });
    // On our stream and waited for: the staging buffer is refilled next.
    RESTKV_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpyAsync(static_cast<uint16_t*>(dev) + r0 * cols, staging.data(),
                        static_cast<size_t>(n * cols) * 2, cudaMemcpyHostToDevice, stream_),
        "weight upload"));
    RESTKV_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream_), "weight upload"));
  }
  return Matrix{GgmlType::kBF16, rows, cols, dev};
}

absl::StatusOr<const float*> CudaBackend::PrepareVector(GgmlType type, int64_t n,
                                                        const void* host) {
  if (!Bind()) return status_;
  const GgmlTypeTraits* traits = GetGgmlTypeTraits(type);
  if (traits == nullptr || !traits->supported || n <= 0 || n % traits->block_size != 0) {
    return absl::UnimplementedError(
        absl::StrFormat("CUDA backend cannot use a vector of type id %d", static_cast<int>(type)));
  }
  std::vector<float> f(static_cast<size_t>(n));
  DequantizeRow(type, host, f.data(), n);
  RESTKV_ASSIGN_OR_RETURN(void* dev, AllocateOwned(static_cast<size_t>(n) * sizeof(float)));
  RESTKV_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpyAsync(dev, f.data(), static_cast<size_t>(n) * sizeof(float),
                                 cudaMemcpyHostToDevice, stream_),
                 "vector upload"));
  RESTKV_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream_), "vector upload"));
  return static_cast<const float*>(dev);
}

void CudaBackend::CopyToHost(const float* src, float* dst, size_t n) {
  if (n == 0 || !Bind()) return;
  if (Record(
          CudaStatus(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_),
                     "CopyToHost"))) {
    Record(CudaStatus(cudaStreamSynchronize(stream_), "CopyToHost"));
  }
}

void CudaBackend::CopyFromHost(const float* src, float* dst, size_t n) {
  if (n == 0 || !Bind()) return;
  if (Record(
          CudaStatus(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, stream_),
                     "CopyFromHost"))) {
    // The caller may free or reuse src as soon as this returns.
    Record(CudaStatus(cudaStreamSynchronize(stream_), "CopyFromHost"));
  }
}

void CudaBackend::CopyDevice(const float* src, float* dst, size_t n) {
  if (n == 0 || src == dst || !Bind()) return;
  const bool overlap = src < dst + n && dst < src + n;
  if (!overlap) {
    Record(
        CudaStatus(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, stream_),
                   "CopyDevice"));
    return;
  }
  // memmove semantics through a scratch copy (cudaMemcpy forbids overlap).
  absl::StatusOr<void*> tmp = attn_partials_.Get(n * sizeof(float));
  if (!Record(tmp.status())) return;
  if (Record(CudaStatus(
          cudaMemcpyAsync(*tmp, src, n * sizeof(float), cudaMemcpyDeviceToDevice, stream_),
          "CopyDevice"))) {
    Record(
        CudaStatus(cudaMemcpyAsync(dst, *tmp, n * sizeof(float), cudaMemcpyDeviceToDevice, stream_),
                   "CopyDevice"));
  }
}

void CudaBackend::GatherRows(const float* src, const int64_t* rows, int64_t num_rows, int64_t width,
                             float* dst) {
  if (num_rows <= 0 || !Bind()) return;
  absl::StatusOr<const int64_t*> d_rows = uploads_.UploadArray(rows, static_cast<size_t>(num_rows));
  if (!Record(d_rows.status())) return;
  Record(LaunchGatherRows(src, *d_rows, num_rows, width, dst, stream_));
}

void CudaBackend::MatMul(const Matrix& w, const float* x, int64_t m, float* y) {
  if (m <= 0 || !Bind()) return;
  RESTKV_CHECK(w.type == GgmlType::kBF16) << "matrix not prepared by the CUDA backend";
  absl::StatusOr<void*> xb = act_bf16_.Get(static_cast<size_t>(m * w.cols) * 2);
  if (!Record(xb.status())) return;
  auto* x_bf16 = static_cast<Bf16Bits*>(*xb);
  if (!Record(LaunchF32ToBf16(x, m * w.cols, x_bf16, stream_))) return;
  Record(GemmBf16(cublas_, static_cast<const Bf16Bits*>(w.data), w.rows, w.cols, x_bf16, m, y,
                  stream_));
}

void CudaBackend::Embedding(const Matrix& table, const int32_t* ids, int64_t m, float* out) {
  if (m <= 0 || !Bind()) return;
  RESTKV_CHECK(table.type == GgmlType::kBF16) << "table not prepared by the CUDA backend";
  for (int64_t i = 0; i < m; ++i) {
    RESTKV_CHECK(ids[i] >= 0 && ids[i] < table.rows) << "token id " << ids[i];
  }
  absl::StatusOr<const int32_t*> d_ids = uploads_.UploadArray(ids, static_cast<size_t>(m));
  if (!Record(d_ids.status())) return;
  Record(LaunchEmbedding(static_cast<const Bf16Bits*>(table.data), table.cols, *d_ids, m, out,
                         stream_));
}

void CudaBackend::RmsNorm(const float* x, const float* weight, int64_t m, int64_t n, float eps,
                          float* y) {
  if (Bind()) Record(LaunchRmsNorm(x, weight, m, n, eps, y, stream_));
}

void CudaBackend::AddBias(float* x, const float* bias, int64_t m, int64_t n) {
  if (Bind()) Record(LaunchAddBias(x, bias, m, n, stream_));
}

void CudaBackend::Add(float* x, const float* y, int64_t n) {
  if (Bind()) Record(LaunchAdd(x, y, n, stream_));
}

void CudaBackend::SwiGlu(float* gate, const float* up, int64_t n) {
  if (Bind()) Record(LaunchSwiGlu(gate, up, n, stream_));
}

void CudaBackend::Rope(float* x, const int32_t* positions, int64_t m, int32_t heads,
                       int32_t head_dim, const RopeParams& p) {
  if (m <= 0 || !Bind()) return;
  const int32_t rot = p.rot_dims > 0 ? p.rot_dims : head_dim;
  RESTKV_CHECK(rot % 2 == 0 && rot <= head_dim) << "rot_dims " << rot;
  RopeLaunchParams lp;
  lp.neox = p.style == RopeStyle::kNeox;
  lp.rot_dims = rot;
  // The same float expression as the CPU backend, so both start from the
  // same theta_scale.
  lp.theta_scale = std::pow(p.theta_base, -2.0f / static_cast<float>(rot));
  lp.position_scale = p.position_scale;
  lp.freq_factors = p.freq_factors;
  absl::StatusOr<const int32_t*> d_pos = uploads_.UploadArray(positions, static_cast<size_t>(m));
  if (!Record(d_pos.status())) return;
  Record(LaunchRope(x, *d_pos, m, heads, head_dim, lp, stream_));
}

void CudaBackend::StoreKv(const float* k, const float* v, const KvSlot* slots, int64_t m,
                          const KvPageLayout& kv) {
  if (m <= 0 || !Bind()) return;
  for (int64_t t = 0; t < m; ++t) {
    RESTKV_CHECK(slots[t].row >= 0 && slots[t].row < kv.block_size) << slots[t].row;
    RESTKV_CHECK(slots[t].page != nullptr) << "slot " << t;
  }
  absl::StatusOr<void*> d_slots = uploads_.Upload(slots, static_cast<size_t>(m) * sizeof(KvSlot));
  if (!Record(d_slots.status())) return;
  Record(LaunchStoreKv(k, v, static_cast<const DeviceKvSlot*>(*d_slots), m, ToDeviceKvLayout(kv),
                       stream_));
}

void CudaBackend::Attention(const float* q, absl::Span<const AttentionSeq> seqs, int32_t heads,
                            const KvPageLayout& kv, float scale, float* out) {
  if (seqs.empty() || !Bind()) return;
  const int32_t kv_heads = kv.kv_heads, head_dim = kv.head_dim, block_size = kv.block_size;
  RESTKV_CHECK(kv_heads > 0 && heads % kv_heads == 0) << heads << " / " << kv_heads;
  RESTKV_CHECK_GT(block_size, 0);
  if (!AttentionSupportsHeadDim(head_dim)) {
    Record(absl::InvalidArgumentError(
        absl::StrFormat("CUDA attention supports head_dim 64 and 128, not %d", head_dim)));
    return;
  }
  const int32_t group = heads / kv_heads;
  // Flatten the block tables and cut every sequence into row tiles.
  std::vector<DeviceAttentionSeq> d_seqs;
  std::vector<float*> table;
  std::vector<DeviceAttentionTile> tiles;
  std::vector<int32_t> holes;  // [Hkv] hole starts of each sequence that has them
  d_seqs.reserve(seqs.size());
  int32_t max_kv = 0, num_tokens = 0;
  int64_t sparse_flags = 0;  // [heads][blocks] keep flags of every sparse sequence
  for (size_t s = 0; s < seqs.size(); ++s) {
    const AttentionSeq& a = seqs[s];
    RESTKV_CHECK(a.num_q >= 0 && a.num_q <= a.kv_len) << a.num_q << " > " << a.kv_len;
    const int32_t num_pages = (a.kv_len + block_size - 1) / block_size;
    d_seqs.push_back({a.q_begin, a.num_q, a.kv_len, static_cast<int32_t>(table.size())});
    // Sparse prefill, as the CPU backend applies it: calls with a row before
    // dense_from, never with per-head lengths.
    if (a.sparse != nullptr && a.hole_begin == nullptr && a.num_q > 0 &&
        a.kv_len - a.num_q < a.sparse_dense_from) {
      d_seqs.back().sparse_index = static_cast<int32_t>(sparse_flags);
      d_seqs.back().sparse_dense_from = a.sparse_dense_from;
      d_seqs.back().sparse_local = a.sparse->local_blocks;
      sparse_flags += static_cast<int64_t>(heads) * ((a.kv_len + kSparseBlock - 1) / kSparseBlock);
    }
    if (a.hole_begin != nullptr) {
      RESTKV_CHECK(a.hole_end <= a.kv_len) << a.hole_end << " > " << a.kv_len;
      d_seqs.back().hole_index = static_cast<int32_t>(holes.size());
      d_seqs.back().hole_end = a.hole_end;
      holes.insert(holes.end(), a.hole_begin, a.hole_begin + kv_heads);
    }
    for (int32_t p = 0; p < num_pages; ++p) {
      RESTKV_CHECK(reinterpret_cast<uintptr_t>(a.pages[p]) % 16 == 0)
          << "KV page " << p << " is not 16-byte aligned";
      table.push_back(a.pages[p]);
    }
    const int32_t rows = a.num_q * group;
    for (int32_t r = 0; r < rows; r += kAttentionRowsPerTile) {
      tiles.push_back({static_cast<int32_t>(s), r});
    }
    max_kv = std::max(max_kv, a.kv_len);
    num_tokens = std::max(num_tokens, a.q_begin + a.num_q);
  }
  if (tiles.empty()) return;
  AttentionLaunch args;
  args.q = q;
  absl::StatusOr<const DeviceAttentionSeq*> up_seqs =
      uploads_.UploadArray(d_seqs.data(), d_seqs.size());
  absl::StatusOr<float* const*> up_table = uploads_.UploadArray(table.data(), table.size());
  absl::StatusOr<const DeviceAttentionTile*> up_tiles =
      uploads_.UploadArray(tiles.data(), tiles.size());
  if (!Record(up_seqs.status()) || !Record(up_table.status()) || !Record(up_tiles.status())) return;
  args.seqs = *up_seqs;
  args.page_table = *up_table;
  args.tiles = *up_tiles;
  if (!holes.empty()) {
    absl::StatusOr<const int32_t*> up_holes = uploads_.UploadArray(holes.data(), holes.size());
    if (!Record(up_holes.status())) return;
    args.hole_begin = *up_holes;
  }
  if (sparse_flags > 0) {
    // Mass scratch [heads][blocks] f32 for one sequence at a time (the
    // largest), then every sequence's flags.
    int64_t max_mass = 0;
    for (const DeviceAttentionSeq& d : d_seqs) {
      if (d.sparse_index >= 0) {
        max_mass = std::max<int64_t>(
            max_mass, static_cast<int64_t>(heads) * ((d.kv_len + kSparseBlock - 1) / kSparseBlock));
      }
    }
    absl::StatusOr<void*> scratch =
        sparse_patterns_.Get(static_cast<size_t>(max_mass * 4 + sparse_flags));
    if (!Record(scratch.status())) return;
    auto* mass = static_cast<float*>(*scratch);
    auto* flags = reinterpret_cast<uint8_t*>(mass + max_mass);
    for (size_t s = 0; s < seqs.size(); ++s) {
      if (d_seqs[s].sparse_index < 0) continue;
      SparsePatternLaunch p;
      p.q = q;
      p.seq = d_seqs[s];
      p.page_table = *up_table;
      p.heads = heads;
      p.kv = ToDeviceKvLayout(kv);
      p.scale = scale;
      p.estimate_rows = seqs[s].sparse->estimate_rows;
      p.top_blocks = seqs[s].sparse->top_blocks;
      p.sink_blocks = seqs[s].sparse->sink_blocks;
      p.mass = mass;
      p.keep = flags + d_seqs[s].sparse_index;
      if (!Record(LaunchSparsePattern(p, stream_))) return;
    }
    args.sparse_keep = flags;
  }
  args.num_tiles = static_cast<int32_t>(tiles.size());
  args.heads = heads;
  args.kv_heads = kv_heads;
  args.head_dim = head_dim;
  args.block_size = block_size;
  args.kv = ToDeviceKvLayout(kv);
  args.scale = scale;
  args.num_tokens = num_tokens;
  args.out = out;
  // Split-K when the tiles alone leave SMs idle (decode, short batches):
  // aim for about two blocks per SM, each covering >= kMinKeysPerSplit keys.
  const int64_t blocks = static_cast<int64_t>(tiles.size()) * kv_heads;
  const int64_t want = 2LL * std::max(1, info_.sm_count);
  int64_t splits = 1;
  if (blocks < want) {
    splits = std::min<int64_t>({(want + blocks - 1) / blocks,
                                (max_kv + kMinKeysPerSplit - 1) / kMinKeysPerSplit, kMaxSplits});
    const int64_t per_split_bytes = static_cast<int64_t>(num_tokens) * heads * (head_dim + 2) * 4;
    splits = std::max<int64_t>(1, std::min(splits, kMaxPartialBytes / per_split_bytes));
  }
  args.num_splits = static_cast<int32_t>(splits);
  if (splits > 1) {
    const int64_t rows = splits * num_tokens * heads;
    absl::StatusOr<void*> partials =
        attn_partials_.Get(static_cast<size_t>(rows * (head_dim + 2)) * 4);
    if (!Record(partials.status())) return;
    auto* base = static_cast<float*>(*partials);
    args.partial_o = base;
    args.partial_ml = base + rows * head_dim;
  }
  Record(LaunchPagedAttention(args, stream_));
}

}  // namespace restkv::kernels::cuda
