// KernelIsa: which instruction-set path the packed matmul kernels take, chosen
// once per backend from the CPU's features (and an override for tests and
// benchmarks), never from global state.
//
// The panel layouts (packed_gemm.h) are the same for every path; only the
// tile kernels differ. kAvx512Vnni needs AVX-512 F/BW/VL + VNNI in both the
// build and the CPU; kAvx2 needs AVX2 + FMA + F16C and uses vpdpbusd where
// the build's flags have it (-march with AVX-VNNI or AVX-512 VL + VNNI),
// pmaddubsw + pmaddwd otherwise; kAvxVnni is the same AVX2 tiles built a
// second time with -mavxvnni (packed_*_avxvnni.cc), for CPUs with AVX-VNNI,
// so that an x86-64-v3 binary uses vpdpbusd where the CPU has it. The
// preference is kAvx512Vnni, kAvxVnni, kAvx2.
#pragma once

#include <optional>
#include <string_view>

namespace restkv::kernels::cpu {

enum class KernelIsa { kAvx512Vnni, kAvxVnni, kAvx2 };

std::string_view KernelIsaName(KernelIsa isa);
std::optional<KernelIsa> KernelIsaFromName(std::string_view name);

// Whether this build compiled the path and this CPU can run it.
bool KernelIsaAvailable(KernelIsa isa);

// The best available path, or `requested` when given and available (an
// unavailable request falls back to the best, so a forced AVX2 run on an
// AVX-512 machine works and a forced AVX-512 run elsewhere does not crash).
// nullopt when no path is available (the callers then use quant_dot.h).
std::optional<KernelIsa> SelectKernelIsa(std::optional<KernelIsa> requested);

// SelectKernelIsa of the RESTKV_CPU_ISA environment variable ("avx512",
// "avxvnni", "avx2"; unset or empty: best). Read by CpuBackend's constructor, once.
std::optional<KernelIsa> KernelIsaFromEnvironment();

}  // namespace restkv::kernels::cpu
