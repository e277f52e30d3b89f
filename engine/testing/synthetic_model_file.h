// WriteSyntheticModel: a synthetic model (engine/model/synthetic_model.h)
// written as a GGUF file under the temporary directory, named by `tag` and
// the process id so concurrent test binaries never share one; returns its
// path. The caller removes it (a loaded Model does not need the file to stay).
//
// LoadGqaTestModel: the model the engine tests share when they need no
// particular shape, loaded on a backend with its file already removed.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "engine/model/model.h"
#include "engine/model/synthetic_model.h"
#include "gtest/gtest.h"

namespace restkv::engine {

inline std::string WriteSyntheticModel(const SyntheticModelSpec& spec, std::string_view tag) {
  const std::string path =
      (std::filesystem::temp_directory_path() /
       ("restkv_" + std::string(tag) + "_" + std::to_string(::getpid()) + ".gguf"))
          .string();
  std::ofstream(path, std::ios::binary) << BuildSyntheticGguf(spec);
  return path;
}

// 4 layers, the spec's default 4 query heads over 2 KV heads (so
// grouped-query attention is exercised), Q8_0 weights, `context_length` positions.
inline std::unique_ptr<Model> LoadGqaTestModel(kernels::Backend& backend, int64_t context_length,
                                               std::string_view tag) {
  SyntheticModelSpec spec;
  spec.num_layers = 4;
  spec.weight_type = kernels::GgmlType::kQ8_0;
  spec.context_length = context_length;
  const std::string path = WriteSyntheticModel(spec, tag);
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(path, backend);
  std::filesystem::remove(path);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *std::move(model) : nullptr;
}

}  // namespace restkv::engine
