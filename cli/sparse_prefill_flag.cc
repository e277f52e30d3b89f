#include "cli/sparse_prefill_flag.h"

namespace restkv::cli {

void AddSparsePrefillFlags(CLI::App* cmd, SparsePrefillFlags* flags) {
  cmd->add_flag(
      "--sparse-prefill", flags->enabled,
      "Block-sparse prefill attention (CPU and CUDA): each head attends to sink, local and its "
      "top key blocks of 64, estimated from the last queries; the last 64 prompt rows "
      "stay dense");
  cmd->add_option("--sparse-prefill-blocks", flags->top_blocks,
                  "Key blocks of 64 each head keeps beyond the sink and local blocks")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

std::optional<kernels::SparsePrefill> ToSparsePrefill(const SparsePrefillFlags& flags) {
  if (!flags.enabled) return std::nullopt;
  kernels::SparsePrefill s;
  s.top_blocks = flags.top_blocks;
  return s;
}

}  // namespace restkv::cli
