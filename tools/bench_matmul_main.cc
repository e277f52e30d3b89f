// bench_matmul: the packed CPU matmul alone, on the weight matrices of a GGUF
// file, for kernel work where a whole forward pass (bench_forward) is too
// noisy a measure. For each distinct (type, rows, cols) among the file's
// 2-D matrices that have panel kernels on the chosen path, it packs the
// file's own weights, quantises seeded random activations once, and times
// PackedWeights::MatMul for each --m (activation rows: 512 is a prefill
// chunk, 1 a decode step), best of --repeats after a warm-up. Prints one JSON
// object: per matrix and m, the seconds and the integer multiply-adds per
// second (rows · cols · m / s), and that as a fraction of the path's int8
// multiply instruction alone on the same threads (tools/dot_peak.h), measured
// first in the same run. RESTKV_CPU_ISA or --isa picks the path.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/thread_pool.h"
#include "engine/gguf/gguf_file.h"
#include "kernels/cpu/kernel_isa.h"
#include "kernels/cpu/packed_gemm.h"
#include "kernels/cpu/quant_dot.h"
#include "kernels/ggml_type.h"
#include "nlohmann/json.hpp"
#include "tools/dot_peak.h"

namespace restkv {
namespace {

using engine::GgufFile;
using engine::GgufTensorInfo;
using kernels::cpu::KernelIsa;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int Main(int argc, char** argv) {
  CLI::App app{"restkv packed matmul benchmark (the file's weight matrices)"};
  std::string model, isa_name;
  int threads = 2, repeats = 5;
  std::vector<int> ms = {512, 1};
  app.add_option("--model", model, "GGUF file whose matrices are timed")->required();
  app.add_option("--threads", threads, "CPU threads")->check(CLI::PositiveNumber);
  app.add_option("--m", ms, "Activation rows per matmul (one run each)")
      ->check(CLI::PositiveNumber);
  app.add_option("--repeats", repeats, "Timed runs per matmul; the best is reported")
      ->check(CLI::PositiveNumber);
  app.add_option("--isa", isa_name, "Kernel path: avx512, avxvnni or avx2 (default: the best)");
  CLI11_PARSE(app, argc, argv);

  std::optional<KernelIsa> requested = kernels::cpu::KernelIsaFromEnvironment();
  if (!isa_name.empty()) {
    requested = kernels::cpu::KernelIsaFromName(isa_name);
    if (!requested) {
      std::fprintf(stderr, "bench_matmul: unknown --isa '%s'\n", isa_name.c_str());
      return 2;
    }
  }
  const std::optional<KernelIsa> isa = kernels::cpu::SelectKernelIsa(requested);
  if (!isa) {
    std::fprintf(stderr, "bench_matmul: this CPU has no packed kernel path\n");
    return 2;
  }
  auto file = GgufFile::Open(model);
  if (!file.ok()) {
    std::fprintf(stderr, "bench_matmul: %s\n", file.status().ToString().c_str());
    return 2;
  }

  // One matrix per distinct (type, rows, cols), the first in file order.
  std::map<std::tuple<int, int64_t, int64_t>, const GgufTensorInfo*> matrices;
  for (const GgufTensorInfo& t : (*file)->tensors()) {
    if (t.dims.size() != 2 || !kernels::cpu::HasPackedGemm(t.type, *isa)) continue;
    matrices.emplace(std::make_tuple(static_cast<int>(t.type), t.dims[1], t.dims[0]), &t);
  }
  if (matrices.empty()) {
    std::fprintf(stderr, "bench_matmul: no matrix of %s has a packed kernel on %s\n", model.c_str(),
                 std::string(kernels::cpu::KernelIsaName(*isa)).c_str());
    return 2;
  }

  ThreadPool pool(threads);
  const double peak = DotPeakGmacPerSecond(*isa, pool);
  std::mt19937 rng(0);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  nlohmann::json out = {{"model", model},
                        {"threads", threads},
                        {"kernel_isa", kernels::cpu::KernelIsaName(*isa)},
                        {"peak_gmac_per_s", peak},
                        {"matrices", nlohmann::json::array()}};
  for (const auto& [key, t] : matrices) {
    const int64_t rows = t->dims[1], cols = t->dims[0];
    const auto packed = kernels::cpu::PackedWeights::Pack(t->type, rows, cols, t->data, pool, *isa);
    for (const int m : ms) {
      std::vector<float> x(static_cast<size_t>(m) * cols), y(static_cast<size_t>(m) * rows);
      for (float& v : x) v = normal(rng);
      kernels::cpu::Q8Activations q;
      q.Quantize(x.data(), m, cols);
      packed->MatMul(q, m, y.data(), pool);  // warm-up
      double best = 1e30;
      for (int i = 0; i < repeats; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        packed->MatMul(q, m, y.data(), pool);
        best = std::min(best, Seconds(t0));
      }
      const double gmac = static_cast<double>(rows) * cols * m / best / 1e9;
      out["matrices"].push_back({{"name", t->name},
                                 {"type", kernels::GetGgmlTypeTraits(t->type)->name},
                                 {"rows", rows},
                                 {"cols", cols},
                                 {"m", m},
                                 {"seconds", best},
                                 {"gmac_per_s", gmac},
                                 {"of_peak", gmac / peak}});
    }
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace restkv

int main(int argc, char** argv) { return restkv::Main(argc, argv); }
