#include "tools/dot_peak.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace restkv {
namespace {

using kernels::cpu::KernelIsa;

constexpr int kChains = 12;
// Instructions per thread per timed call: ~4 ms at 5e9 a second.
constexpr int64_t kSteps = int64_t{20'000'000} / kChains;

// Each function runs kSteps × kChains of its instruction and returns a value
// that depends on all of them; the empty asm makes the operands opaque each
// step, so the compiler can neither fold nor hoist the chain. (GCC 12 adds
// register moves between the unrolled steps; one thread still measured 5.2e9
// vpdpbusd zmm a second on the 2-core Xeon VM, about two a cycle.) Compiled
// for their instruction sets by attribute, so that an x86-64-v3 build has
// them too (each runs only where SelectKernelIsa chose its path).
__attribute__((target("avx512f,avx512bw,avx512vnni"))) int32_t ChainAvx512Vnni() {
  __m512i acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_epi32(j);
  __m512i u = _mm512_set1_epi8(1), s = _mm512_set1_epi8(2);
  for (int64_t i = 0; i < kSteps; ++i) {
    asm volatile("" : : "v"(u), "v"(s));
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], u, s);
  }
  __m512i sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm512_add_epi32(sum, acc[j]);
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, sum);
  int32_t r = 0;
  for (const int32_t v : lanes) r += v;
  return r;
}

// The 256-bit chains' accumulators and their sum (inlined into both).
__attribute__((target("avx2"))) inline void Init256(__m256i (&acc)[kChains]) {
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_epi32(j);
}
__attribute__((target("avx2"))) inline int32_t Sum256(const __m256i (&acc)[kChains]) {
  __m256i sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm256_add_epi32(sum, acc[j]);
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
  int32_t r = 0;
  for (const int32_t v : lanes) r += v;
  return r;
}

__attribute__((target("avx2,avxvnni"))) int32_t ChainAvxVnni() {
  __m256i acc[kChains];
  Init256(acc);
  __m256i u = _mm256_set1_epi8(1), s = _mm256_set1_epi8(2);
  for (int64_t i = 0; i < kSteps; ++i) {
    asm volatile("" : : "x"(u), "x"(s));
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_dpbusd_avx_epi32(acc[j], u, s);
  }
  return Sum256(acc);
}

// Each accumulator's int16 pairs are read as the next step's unsigned bytes,
// which makes the pmaddubsw a dependent chain by itself.
__attribute__((target("avx2"))) int32_t ChainAvx2() {
  __m256i acc[kChains];
  Init256(acc);
  __m256i s = _mm256_set1_epi8(2);
  for (int64_t i = 0; i < kSteps; ++i) {
    asm volatile("" : : "x"(s));
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_maddubs_epi16(acc[j], s);
  }
  return Sum256(acc);
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Peak {
  int64_t macs_per_step;
  int32_t (*chain)();
};

Peak PeakOf(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kAvx512Vnni:
      return {64, ChainAvx512Vnni};
    case KernelIsa::kAvxVnni:
      return {32, ChainAvxVnni};
    case KernelIsa::kAvx2:
      return {32, ChainAvx2};
  }
  return {32, ChainAvx2};
}

}  // namespace

double DotPeakGmacPerSecond(KernelIsa isa, ThreadPool& pool, double seconds) {
  const Peak peak = PeakOf(isa);
  const int threads = pool.num_threads();
  std::vector<int32_t> sink(static_cast<size_t>(threads));
  const auto run = [&] {
    pool.ParallelFor(threads, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) sink[static_cast<size_t>(t)] += peak.chain();
    });
  };
  run();  // warm-up: the cores' wide units power up on first use
  // The fastest call: on a shared machine, the one least disturbed.
  double best = 1e30;
  const auto start = std::chrono::steady_clock::now();
  do {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    best = std::min(best, Seconds(t0));
  } while (Seconds(start) < seconds);
  asm volatile("" : : "r"(sink.data()) : "memory");
  return static_cast<double>(threads) * kSteps * kChains * peak.macs_per_step / best / 1e9;
}

}  // namespace restkv
