#include "cli/device_choice.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/model/synthetic_model.h"
#include "kernels/cpu/cpu_backend.h"
#if defined(RESTKV_HAVE_CUDA)
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_device.h"
#endif

namespace restkv::cli {
namespace {

// Room left on the GPU for activations, cuBLAS workspaces and scratch once
// the KV pool is carved out (a 512-token chunk of an 8B model needs well
// under this).
constexpr int64_t kGpuHeadroomBytes = int64_t{1} << 30;

struct RandomWeightShape {
  int32_t layers, hidden, heads, kv_heads, ffn;
  float rope_theta;
};

const std::map<std::string, RandomWeightShape>& Shapes() {
  // Published shapes; the vocabulary is always the synthetic 263 tokens.
  static const auto* shapes = new std::map<std::string, RandomWeightShape>{
      {"tiny", {2, 256, 4, 2, 512, 10000.0f}},
      {"smollm2-135m", {30, 576, 9, 3, 1536, 100000.0f}},
      {"llama3-8b", {32, 4096, 32, 8, 14336, 500000.0f}},
      {"llama3-70b", {80, 8192, 64, 8, 28672, 500000.0f}},
  };
  return *shapes;
}

}  // namespace

void AddDeviceFlags(CLI::App* cmd, DeviceFlags* flags) {
  cmd->add_option("--device", flags->device,
                  "cpu, cuda, or auto (cuda when built with it and a GPU is present)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--gpu-memory-utilization", flags->gpu_memory_utilization,
                  "Fraction of GPU memory for weights + KV cache (cuda)")
      ->capture_default_str();
  cmd->add_option("--random-weights", flags->random_weights,
                  "Use seeded random weights of a named shape instead of --model (" +
                      absl::StrJoin(RandomWeightShapes(), ", ") + "); output text is meaningless");
  cmd->add_option("--random-weights-dir", flags->random_weights_dir,
                  "Cache folder for the generated random-weights GGUF (default: temp dir)");
}

bool BuiltWithCuda() {
#if defined(RESTKV_HAVE_CUDA)
  return true;
#else
  return false;
#endif
}

absl::StatusOr<std::unique_ptr<kernels::Backend>> CreateBackend(const DeviceFlags& flags,
                                                                int threads) {
  if (!(flags.gpu_memory_utilization > 0.0 && flags.gpu_memory_utilization <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--gpu-memory-utilization must be in (0, 1], got %g", flags.gpu_memory_utilization));
  }
  std::string device = flags.device;
  if (device == "auto") {
#if defined(RESTKV_HAVE_CUDA)
    device = kernels::cuda::DeviceCount() > 0 ? "cuda" : "cpu";
#else
    device = "cpu";
#endif
  }
  if (device == "cpu") return std::make_unique<kernels::cpu::CpuBackend>(threads);
  if (device != "cuda") {
    return absl::InvalidArgumentError("--device must be cpu, cuda or auto, not " + device);
  }
#if defined(RESTKV_HAVE_CUDA)
  kernels::cuda::CudaBackendOptions options;
  options.host_threads = threads;
  auto backend = kernels::cuda::CudaBackend::Create(options);
  if (!backend.ok()) return backend.status();
  return std::unique_ptr<kernels::Backend>(std::move(*backend));
#else
  return absl::FailedPreconditionError(
      "--device cuda: this restkv was built without CUDA (nvcc was not found at configure time)");
#endif
}

absl::StatusOr<int64_t> KvCacheBytes(kernels::Backend& backend, const DeviceFlags& flags,
                                     int64_t kv_flag_bytes, bool kv_flag_given) {
  if (kv_flag_given) return kv_flag_bytes;
#if defined(RESTKV_HAVE_CUDA)
  auto* gpu = dynamic_cast<kernels::cuda::CudaBackend*>(&backend);
  if (gpu == nullptr) return kv_flag_bytes;
  gpu->Synchronize();
  const int device = 0;  // CudaBackendOptions' default, as CreateBackend uses
  const kernels::cuda::DeviceInfo now = kernels::cuda::GetDeviceInfo(device);
  const int64_t in_use = now.total_memory - now.free_memory;
  const int64_t budget = static_cast<int64_t>(flags.gpu_memory_utilization * now.total_memory);
  const int64_t kv = budget - in_use - kGpuHeadroomBytes;
  if (kv <= 0) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "--gpu-memory-utilization %g leaves no KV cache room: %d of %d bytes already in use",
        flags.gpu_memory_utilization, in_use, now.total_memory));
  }
  return kv;
#else
  return kv_flag_bytes;
#endif
}

std::vector<std::string> RandomWeightShapes() {
  std::vector<std::string> names;
  for (const auto& [name, shape] : Shapes()) names.push_back(name);
  return names;
}

absl::StatusOr<std::string> RandomWeightsModel(const std::string& shape_name,
                                               const std::string& dir_flag) {
  const auto it = Shapes().find(shape_name);
  if (it == Shapes().end()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--random-weights: unknown shape %s (one of: %s)", shape_name,
                        absl::StrJoin(RandomWeightShapes(), ", ")));
  }
  const RandomWeightShape& s = it->second;
  std::error_code ec;
  const std::string dir =
      dir_flag.empty() ? std::filesystem::temp_directory_path(ec).string() : dir_flag;
  const std::string path = dir + "/restkv-random-" + shape_name + ".gguf";
  if (std::filesystem::exists(path, ec)) return path;
  engine::SyntheticModelSpec spec;
  spec.num_layers = s.layers;
  spec.hidden_size = s.hidden;
  spec.num_heads = s.heads;
  spec.num_kv_heads = s.kv_heads;
  spec.ffn_size = s.ffn;
  spec.rope_theta = s.rope_theta;
  spec.context_length = 131072 + 8192;
  // Q4_0 keeps the file (and the CPU path) small; the GPU dequantises to bf16.
  spec.weight_type = kernels::GgmlType::kQ4_0;
  spec.tied_embeddings = false;
  std::fprintf(stderr, "generating random weights of shape %s into %s (once) ...\n",
               shape_name.c_str(), path.c_str());
  const std::string bytes = engine::BuildSyntheticGguf(spec);
  const std::string tmp = path + ".part";
  std::ofstream f(tmp, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) return absl::InternalError("cannot write " + tmp);
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError("cannot rename " + tmp + ": " + ec.message());
  return path;
}

}  // namespace restkv::cli
