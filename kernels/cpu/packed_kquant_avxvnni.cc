// The AVX2 tiles of the K-quant panels built once more with AVX-VNNI
// (kernels/cpu/CMakeLists.txt gives this file -mavxvnni), for
// KernelIsa::kAvxVnni; see packed_gemm_avxvnni.cc.
#define RESTKV_AVX2_TILES_VNNI 1
#include "kernels/cpu/packed_kquant_avx2.cc"  // NOLINT(bugprone-suspicious-include)
