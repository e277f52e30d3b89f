// --sparse-prefill [--sparse-prefill-blocks N]: block-sparse prefill
// attention (kernels::SparsePrefill; CPU backend), shared by serve, generate
// and eval. Composes with every KV policy: the prompt's last 64 rows, which
// hold the eviction window, stay dense.
#pragma once

#include <cstdint>
#include <optional>

#include "CLI/CLI.hpp"
#include "kernels/backend.h"

namespace restkv::cli {

struct SparsePrefillFlags {
  bool enabled = false;
  int32_t top_blocks = 16;  // key blocks of 64 per head beyond sinks and the local band
};

void AddSparsePrefillFlags(CLI::App* cmd, SparsePrefillFlags* flags);

// The configuration the flags name, or nullopt when sparse prefill is off.
std::optional<kernels::SparsePrefill> ToSparsePrefill(const SparsePrefillFlags& flags);

}  // namespace restkv::cli
