// A small synthetic model file for eval tests (seeded random weights, real
// shapes and a byte-level tokenizer). Header-only test helper.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "engine/model/model.h"
#include "engine/model/synthetic_model.h"
#include "kernels/cpu/cpu_backend.h"

namespace restkv::eval {

class TestModel {
 public:
  explicit TestModel(const std::string& tag, int32_t layers = 3) {
    engine::SyntheticModelSpec spec;
    spec.num_layers = layers;
    spec.num_heads = 4;
    spec.num_kv_heads = 2;
    spec.weight_type = kernels::GgmlType::kQ8_0;
    spec.context_length = 2048;
    path_ = (std::filesystem::temp_directory_path() /
             ("restkv_eval_" + tag + "_" + std::to_string(::getpid()) + ".gguf"))
                .string();
    std::ofstream(path_, std::ios::binary) << engine::BuildSyntheticGguf(spec);
    backend_ = std::make_unique<kernels::cpu::CpuBackend>(2);
    model_ = *engine::Model::Load(path_, *backend_);
  }
  ~TestModel() { std::filesystem::remove(path_); }
  engine::Model& model() { return *model_; }

 private:
  std::string path_;
  std::unique_ptr<kernels::cpu::CpuBackend> backend_;
  std::unique_ptr<engine::Model> model_;
};

}  // namespace restkv::eval
