// Test-only: reads kernels/cpu/testdata/quant_fixture.txt, the gguf-py
// reference values written by scripts/gen-quant-fixture (format described
// there). Header-only so that dequantize_test.cc and quantize_ref_test.cc
// share it without a library.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace restkv::kernels::testing {

struct QuantFixture {
  struct Dequant {
    std::string type;           // "Q4_K", ...
    int64_t n = 0;              // elements
    std::string blocks;         // raw block bytes
    std::vector<float> values;  // [n] expected
  };
  struct Quant {
    std::string type;
    std::string bytes;  // expected bytes of `input`
  };
  std::vector<Dequant> dequant;
  std::vector<float> input;  // the row quantised by every `quant` record
  std::vector<Quant> quant;
};

inline std::vector<float> FloatsFromBytes(const std::string& bytes) {
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

inline std::string QuantFixturePath() {
  const char* env = std::getenv("RESTKV_SOURCE_DIR");
#ifdef RESTKV_SOURCE_DIR
  const std::string root = env != nullptr ? env : RESTKV_SOURCE_DIR;
#else
  const std::string root = env != nullptr ? env : ".";
#endif
  return root + "/kernels/cpu/testdata/quant_fixture.txt";
}

inline absl::StatusOr<QuantFixture> LoadQuantFixture() {
  const std::string path = QuantFixturePath();
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot open " + path);
  QuantFixture f;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> w = absl::StrSplit(line, ' ');
    const auto bad = [&] {
      return absl::DataLossError(path + ": bad line " + std::to_string(line_no));
    };
    int64_t n = 0;
    if (w[0] == "dequant" && w.size() == 5 && absl::SimpleAtoi(w[2], &n)) {
      f.dequant.push_back(
          {w[1], n, absl::HexStringToBytes(w[3]), FloatsFromBytes(absl::HexStringToBytes(w[4]))});
      if (static_cast<int64_t>(f.dequant.back().values.size()) != n) return bad();
    } else if (w[0] == "input" && w.size() == 3 && absl::SimpleAtoi(w[1], &n)) {
      f.input = FloatsFromBytes(absl::HexStringToBytes(w[2]));
      if (static_cast<int64_t>(f.input.size()) != n) return bad();
    } else if (w[0] == "quantize" && w.size() == 3) {
      f.quant.push_back({w[1], absl::HexStringToBytes(w[2])});
    } else {
      return bad();
    }
  }
  return f;
}

}  // namespace restkv::kernels::testing
