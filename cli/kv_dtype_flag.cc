#include "cli/kv_dtype_flag.h"

#include "absl/strings/str_format.h"

namespace restkv::cli {

void AddKvDtypeFlag(CLI::App* cmd, std::string* value) {
  cmd->add_option("--kv-cache-dtype", *value,
                  absl::StrFormat("KV cache element type: %s (auto: f16 on cpu, bf16 on cuda)",
                                  kKvDtypeChoices))
      ->capture_default_str();
}

absl::StatusOr<kernels::KvDtype> ResolveKvDtype(std::string_view flag,
                                                std::string_view backend_name) {
  if (flag == "auto") {
    return backend_name == "cuda" ? kernels::KvDtype::kBf16 : kernels::KvDtype::kF16;
  }
  if (auto dtype = kernels::KvDtypeFromName(flag); dtype.has_value()) return *dtype;
  return absl::InvalidArgumentError(
      absl::StrFormat("--kv-cache-dtype: unknown value '%s' (expected %s)", flag, kKvDtypeChoices));
}

}  // namespace restkv::cli
