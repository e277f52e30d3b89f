// The native K-quant matmul against llama.cpp's own reading of the blocks:
// kernels/cpu/testdata/kquant_matmul_fixture.txt holds Q4_K / Q5_K / Q6_K
// matrices with gguf-py's dequantised values (scripts/gen-kquant-fixture).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "kernels/cpu/packed_gemm.h"
#include "kernels/cpu/quant_dot.h"
#include "kernels/cpu/random_testutil.h"
#include "kernels/fp16.h"

namespace restkv::kernels::cpu {
namespace {

struct KMatrix {
  GgmlType type;
  int64_t rows = 0, cols = 0;
  std::string blocks;
  std::vector<float> values;  // [rows][cols], gguf-py's dequantisation
};

std::vector<KMatrix> LoadFixture() {
  const char* env = std::getenv("RESTKV_SOURCE_DIR");
  const std::string path = std::string(env != nullptr ? env : RESTKV_SOURCE_DIR) +
                           "/kernels/cpu/testdata/kquant_matmul_fixture.txt";
  std::ifstream in(path);
  std::vector<KMatrix> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> w = absl::StrSplit(line, ' ');
    if (w.size() != 6 || w[0] != "kmatrix") continue;
    KMatrix m;
    m.type = w[1] == "Q4_K" ? GgmlType::kQ4_K : w[1] == "Q5_K" ? GgmlType::kQ5_K : GgmlType::kQ6_K;
    if (!absl::SimpleAtoi(w[2], &m.rows) || !absl::SimpleAtoi(w[3], &m.cols)) continue;
    m.blocks = absl::HexStringToBytes(w[4]);
    const std::string v = absl::HexStringToBytes(w[5]);
    m.values.resize(v.size() / sizeof(float));
    std::memcpy(m.values.data(), v.data(), v.size());
    out.push_back(std::move(m));
  }
  return out;
}

TEST(KQuantFixture, HasEveryType) {
  const std::vector<KMatrix> f = LoadFixture();
  ASSERT_EQ(f.size(), 3u) << "regenerate with scripts/gen-kquant-fixture";
  for (const KMatrix& m : f) {
    ASSERT_EQ(static_cast<int64_t>(m.blocks.size()), RowBytes(m.type, m.cols) * m.rows);
    ASSERT_EQ(static_cast<int64_t>(m.values.size()), m.rows * m.cols);
  }
}

// y = W x with W as llama.cpp dequantises it and x as the kernels see it
// (its Q8_1 values), for the scalar reference and every kernel path here.
TEST(KQuantFixture, MatMulMatchesGgufPyDequantisedWeights) {
  ThreadPool pool(2);
  int paths_run = 0;
  for (const KMatrix& m : LoadFixture()) {
    const int64_t nx = 11;
    const std::vector<float> x = testing::RandomVector(nx * m.cols, 7, 1.5f);
    Q8Activations act;
    act.Quantize(x.data(), nx, m.cols);
    std::vector<double> want(nx * m.rows), scale(nx * m.rows);
    for (int64_t r = 0; r < nx; ++r) {
      const BlockQ8_1* xb = act.blocks(r);
      for (int64_t o = 0; o < m.rows; ++o) {
        double sum = 0.0, mag = 0.0;
        for (int64_t k = 0; k < m.cols; ++k) {
          const double xv = static_cast<double>(xb[k / 32].qs[k % 32]) * Fp16ToFloat(xb[k / 32].d);
          sum += static_cast<double>(m.values[o * m.cols + k]) * xv;
          mag += std::fabs(static_cast<double>(m.values[o * m.cols + k]) * xv);
        }
        want[r * m.rows + o] = sum;
        scale[r * m.rows + o] = mag;
      }
    }
    const int64_t row_bytes = RowBytes(m.type, m.cols);
    for (int64_t r = 0; r < nx; ++r) {
      for (int64_t o = 0; o < m.rows; ++o) {
        const double ref =
            DotRowReference(m.type, m.blocks.data() + o * row_bytes, act.blocks(r), m.cols / 32);
        ASSERT_NEAR(ref, want[r * m.rows + o], 1e-5 * scale[r * m.rows + o] + 1e-7)
            << GetGgmlTypeTraits(m.type)->name << " reference, x " << r << " out " << o;
      }
    }
    for (KernelIsa isa : {KernelIsa::kAvx512Vnni, KernelIsa::kAvxVnni, KernelIsa::kAvx2}) {
      if (!HasPackedGemm(m.type, isa)) continue;
      ++paths_run;
      auto packed = PackedWeights::Pack(m.type, m.rows, m.cols, m.blocks.data(), pool, isa);
      std::vector<float> y(nx * m.rows, NAN);
      packed->MatMul(act, nx, y.data(), pool);
      for (int64_t i = 0; i < nx * m.rows; ++i) {
        ASSERT_NEAR(y[i], want[i], 1e-5 * scale[i] + 1e-7)
            << GetGgmlTypeTraits(m.type)->name << " " << KernelIsaName(isa) << " x " << i / m.rows
            << " out " << i % m.rows;
      }
    }
  }
  if (paths_run == 0) GTEST_SKIP() << "no K-quant kernel path in this build or CPU";
}

}  // namespace
}  // namespace restkv::kernels::cpu
