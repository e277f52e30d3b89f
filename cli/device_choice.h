// The command line's choice of compute device and model weights:
// --device cpu|cuda|auto, --gpu-memory-utilization, --random-weights SHAPE.
//
// - auto picks cuda when this build has the CUDA backend and a GPU is
//   present, cpu otherwise.
// - On cuda the KV cache pool takes what --gpu-memory-utilization leaves
//   after the weights (minus headroom for activations), unless
//   --kv-cache-memory was given explicitly.
// - --random-weights builds a model of a named shape with seeded random
//   weights (engine/model/synthetic_model.h; 263-token byte vocabulary) instead of
//   loading a checkpoint, so large-model speed and memory can be measured
//   without one. Its text output is meaningless; the CLI says so.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace restkv::cli {

struct DeviceFlags {
  std::string device = "auto";          // auto | cpu | cuda
  double gpu_memory_utilization = 0.9;  // fraction of the GPU's memory restkv may hold
  std::string random_weights;           // shape name, or empty for a real model
  std::string random_weights_dir;       // where the generated GGUF is cached (default: temp dir)
};

// Registers the flags on a subcommand.
void AddDeviceFlags(CLI::App* cmd, DeviceFlags* flags);

// Whether this binary was built with the CUDA backend.
bool BuiltWithCuda();

// Errors: InvalidArgument for an unknown device or a utilization outside
// (0, 1]; FailedPrecondition for cuda in a build without it or on a machine
// without a GPU.
absl::StatusOr<std::unique_ptr<kernels::Backend>> CreateBackend(const DeviceFlags& flags,
                                                                int threads);

// KV cache bytes for the engine once the model is loaded on `backend`: the
// explicit --kv-cache-memory value when given (or on cpu), otherwise on cuda
// utilization * total - (total - free) - headroom.
// Errors: ResourceExhausted when the weights leave no room.
absl::StatusOr<int64_t> KvCacheBytes(kernels::Backend& backend, const DeviceFlags& flags,
                                     int64_t kv_flag_bytes, bool kv_flag_given);

// Shapes --random-weights accepts.
std::vector<std::string> RandomWeightShapes();

// Path of a GGUF with random weights of the named shape, generated on first
// use and cached. Errors: InvalidArgument naming the shapes for an unknown
// name; Internal when the file cannot be written.
absl::StatusOr<std::string> RandomWeightsModel(const std::string& shape, const std::string& dir);

}  // namespace restkv::cli
