// DotPeakGmacPerSecond: what this machine's cores can do at most with the
// int8 multiply instruction a kernel path is built on, measured, so that
// bench_matmul can state a tile's speed as a fraction of it (a VM's clock,
// turbo and port layout are not known in advance; a data sheet figure would
// be a guess).
//
// Each thread of the pool runs that instruction over 12 independent
// accumulators (more than its latency × throughput), nothing else, in runs
// of ~4 ms repeated for about `seconds`; the result is the fastest run's
// multiply-adds per second over all threads, in billions (the fastest, as
// the one least disturbed on a shared machine):
//   kAvx512Vnni  vpdpbusd zmm   64 multiply-adds an instruction
//   kAvxVnni     vpdpbusd ymm   32
//   kAvx2        vpmaddubsw ymm 32 (the pair products alone: the AVX2 tiles
//                               also need a pmaddwd and an add per few of
//                               them, so this bound is not reachable)
#pragma once

#include "common/thread_pool.h"
#include "kernels/cpu/kernel_isa.h"

namespace restkv {

// REQUIRES: this CPU runs `isa` (SelectKernelIsa's answer).
double DotPeakGmacPerSecond(kernels::cpu::KernelIsa isa, ThreadPool& pool, double seconds = 0.3);

}  // namespace restkv
