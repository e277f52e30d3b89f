// Parsing and printing memory sizes given on the command line ("2GiB").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace restkv {

// Accepts a non-negative number (decimals allowed) with an optional unit:
// B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB (case-insensitive). SI units
// (KB, MB, …) are powers of 1000, binary ones (K, KiB, …) powers of 1024.
// Errors: InvalidArgument naming the text.
absl::StatusOr<int64_t> ParseByteSize(std::string_view text);

// "1.50 GiB"-style rendering.
std::string FormatByteSize(int64_t bytes);

}  // namespace restkv
