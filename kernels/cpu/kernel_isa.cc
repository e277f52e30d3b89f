#include "kernels/cpu/kernel_isa.h"

#include <cstdlib>
#include <string>

namespace restkv::kernels::cpu {

std::string_view KernelIsaName(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512Vnni:
      return "avx512";
    case KernelIsa::kAvxVnni:
      return "avxvnni";
    case KernelIsa::kAvx2:
      return "avx2";
  }
  return "?";
}

std::optional<KernelIsa> KernelIsaFromName(std::string_view name) {
  if (name == "avx512") return KernelIsa::kAvx512Vnni;
  if (name == "avxvnni") return KernelIsa::kAvxVnni;
  if (name == "avx2") return KernelIsa::kAvx2;
  return std::nullopt;
}

bool KernelIsaAvailable(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512Vnni:
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512VNNI__)
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
      return false;
#endif
    case KernelIsa::kAvxVnni:
      // RESTKV_HAVE_AVXVNNI_TILES: the compiler took -mavxvnni for
      // packed_*_avxvnni.cc (kernels/cpu/CMakeLists.txt).
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && RESTKV_HAVE_AVXVNNI_TILES
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("avxvnni");
#else
      return false;
#endif
    case KernelIsa::kAvx2:
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
      return false;
#endif
  }
  return false;
}

std::optional<KernelIsa> SelectKernelIsa(std::optional<KernelIsa> requested) {
  if (requested.has_value() && KernelIsaAvailable(*requested)) return requested;
  for (KernelIsa isa : {KernelIsa::kAvx512Vnni, KernelIsa::kAvxVnni, KernelIsa::kAvx2}) {
    if (KernelIsaAvailable(isa)) return isa;
  }
  return std::nullopt;
}

std::optional<KernelIsa> KernelIsaFromEnvironment() {
  const char* env = std::getenv("RESTKV_CPU_ISA");
  std::optional<KernelIsa> requested;
  if (env != nullptr) requested = KernelIsaFromName(env);
  return SelectKernelIsa(requested);
}

}  // namespace restkv::kernels::cpu
