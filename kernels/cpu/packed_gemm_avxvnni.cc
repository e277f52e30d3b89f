// The AVX2 tiles of the Q4_0 / Q4_1 / Q8_0 panels built once more with
// AVX-VNNI (kernels/cpu/CMakeLists.txt gives this file -mavxvnni), so that a
// binary built for x86-64-v3 still uses vpdpbusd on the CPUs that have it
// (KernelIsa::kAvxVnni, chosen at run time). Same source, other flags.
#define RESTKV_AVX2_TILES_VNNI 1
#include "kernels/cpu/packed_gemm_avx2.cc"  // NOLINT(bugprone-suspicious-include)
