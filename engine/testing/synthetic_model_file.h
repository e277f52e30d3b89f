// WriteSyntheticModel: a synthetic model (engine/model/synthetic_model.h)
// written as a GGUF file under the temporary directory, named by `tag` and
// the process id so concurrent test binaries never share one; returns its
// path. The caller removes it (a loaded Model does not need the file to stay).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "engine/model/synthetic_model.h"

namespace restkv::engine {

inline std::string WriteSyntheticModel(const SyntheticModelSpec& spec, std::string_view tag) {
  const std::string path =
      (std::filesystem::temp_directory_path() /
       ("restkv_" + std::string(tag) + "_" + std::to_string(::getpid()) + ".gguf"))
          .string();
  std::ofstream(path, std::ios::binary) << BuildSyntheticGguf(spec);
  return path;
}

}  // namespace restkv::engine
