// --kv-cache-dtype auto|f32|f16|bf16|q8_0: the element type of the KV pages,
// shared by serve, generate, eval and plan.
//
// `auto` is 16-bit: f16 on the CPU backend (F16C/AVX-512 widen it in one
// instruction; its 10-bit mantissa is the more precise of the two), bf16 on
// CUDA (what every GPU server stores; fp32's range, so no overflow checks).
#pragma once

#include <string>
#include <string_view>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "kernels/kv_dtype.h"

namespace restkv::cli {

inline constexpr std::string_view kKvDtypeChoices = "auto, f32, f16, bf16 or q8_0";

// Registers --kv-cache-dtype (default "auto") on `cmd`.
void AddKvDtypeFlag(CLI::App* cmd, std::string* value);

// The dtype `flag` names for a backend called `backend_name` ("cpu",
// "cuda"). Errors: InvalidArgument naming the flag and the value when it is
// none of kKvDtypeChoices.
absl::StatusOr<kernels::KvDtype> ResolveKvDtype(std::string_view flag,
                                                std::string_view backend_name);

}  // namespace restkv::cli
