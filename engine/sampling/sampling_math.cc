#include "engine/sampling/sampling_math.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "common/check.h"

// The vector helpers below have internal linkage, so GCC's note that passing
// 64-byte vectors by value has a different ABI with and without AVX-512
// concerns no caller outside this file.
#if defined(__GNUC__)  // GCC and Clang
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace restkv::engine {
namespace {

// NOTE(restkv): the loops below use GCC/Clang vector extensions rather
// than hoping the auto-vectoriser fires: float reductions are not
// vectorised without -ffast-math, and -O2 does not vectorise the exp at all.
// One source; the compiler lowers a 16-float vector to one AVX-512, two AVX2
// or four SSE registers as -march allows.
constexpr size_t kLanes = 16;
constexpr size_t kBlock = 256;  // SumExpShifted works through a stack buffer of this many
using Vf = float __attribute__((vector_size(kLanes * sizeof(float))));
using Vi = int32_t __attribute__((vector_size(kLanes * sizeof(int32_t))));

Vf Load(const float* p) {
  Vf v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
void Store(float* p, const Vf& v) { std::memcpy(p, &v, sizeof(v)); }
Vf Splat(float x) { return Vf{} + x; }

float HorizontalMax(const Vf& v) {
  float m = v[0];
  for (size_t j = 1; j < kLanes; ++j) m = v[j] > m ? v[j] : m;
  return m;
}
float HorizontalSum(const Vf& v) {
  float sum = 0.0f;
  for (size_t j = 0; j < kLanes; ++j) sum += v[j];
  return sum;
}

// The max of the kChunk floats at p: four vector loads, one horizontal step.
constexpr size_t kChunk = 4 * kLanes;
float ChunkMax(const float* p) {
  Vf a = Load(p);
  Vf b = Load(p + kLanes);
  const Vf c = Load(p + 2 * kLanes);
  const Vf d = Load(p + 3 * kLanes);
  a = a > b ? a : b;
  b = c > d ? c : d;
  return HorizontalMax(a > b ? a : b);
}

// exp(x) for x <= 0, Cephes-style: x = n ln2 + r with |r| <= ln2 / 2, a
// degree-6 polynomial for e^r, then 2^n built in the exponent bits. Inputs
// below -87 give 0. Written once for vectors and scalars (T = Vf or float).
template <typename T, typename I>
T ExpNonPositive(const T& x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // ln 2 split so n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (the compiler keeps
  // (a + K) - K as written without -ffast-math).
  constexpr float kRound = 12582912.0f;
  const T lowest = T{} + -87.0f;
  const T clamped = x < lowest ? lowest : x;
  const T n = (clamped * kLog2e + kRound) - kRound;
  T r = clamped - n * kLn2Hi;
  r = r - n * kLn2Lo;
  T p = T{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  I bits;
  if constexpr (std::is_same_v<T, float>) {
    bits = (static_cast<int32_t>(n) + 127) << 23;
  } else {
    bits = (__builtin_convertvector(n, I) + 127) << 23;
  }
  T two_n;
  std::memcpy(&two_n, &bits, sizeof(two_n));
  return x < lowest ? T{} : p * two_n;
}

}  // namespace

float MaxOf(absl::Span<const float> x) {
  RESTKV_CHECK(!x.empty());
  const float* data = x.data();
  const size_t n = x.size();
  size_t i = 0;
  float m = data[0];
  if (n >= kLanes) {
    Vf acc = Load(data);
    for (i = kLanes; i + kLanes <= n; i += kLanes) {
      const Vf v = Load(data + i);
      acc = v > acc ? v : acc;
    }
    m = HorizontalMax(acc);
  }
  for (; i < n; ++i) m = data[i] > m ? data[i] : m;
  return m;
}

int32_t Argmax(absl::Span<const float> x) {
  const float m = MaxOf(x);
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] == m) return static_cast<int32_t>(i);  // the first: ties go to the lowest id
  }
  return 0;  // unreachable without NaN
}

void ExpShiftedScaled(absl::Span<const float> x, float shift, float scale, absl::Span<float> out) {
  RESTKV_CHECK_EQ(x.size(), out.size());
  const float* in = x.data();
  float* o = out.data();
  const size_t n = x.size();
  const Vf vshift = Splat(shift);
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Store(o + i, ExpNonPositive<Vf, Vi>((Load(in + i) - vshift) * scale));
  }
  for (; i < n; ++i) o[i] = ExpNonPositive<float, int32_t>((in[i] - shift) * scale);
}

void ZeroBelow(absl::Span<float> x, float floor) {
  float* data = x.data();
  const Vf vfloor = Splat(floor);
  size_t i = 0;
  for (; i + kLanes <= x.size(); i += kLanes) {
    const Vf v = Load(data + i);
    Store(data + i, v < vfloor ? Vf{} : v);
  }
  for (; i < x.size(); ++i) data[i] = data[i] < floor ? 0.0f : data[i];
}

float SumOf(absl::Span<const float> x) {
  const float* data = x.data();
  Vf acc{};
  size_t i = 0;
  for (; i + kLanes <= x.size(); i += kLanes) acc += Load(data + i);
  float sum = HorizontalSum(acc);
  for (; i < x.size(); ++i) sum += data[i];
  return sum;
}

float SumOfAtLeast(absl::Span<const float> x, float floor) {
  const float* data = x.data();
  const Vf vfloor = Splat(floor);
  Vf acc{};
  size_t i = 0;
  for (; i + kLanes <= x.size(); i += kLanes) {
    const Vf v = Load(data + i);
    acc += v >= vfloor ? v : Vf{};
  }
  float sum = HorizontalSum(acc);
  for (; i < x.size(); ++i) sum += data[i] >= floor ? data[i] : 0.0f;
  return sum;
}

double SumExpShifted(absl::Span<const float> x, float shift) {
  float block[kBlock];
  double total = 0.0;
  for (size_t start = 0; start < x.size(); start += kBlock) {
    const size_t n = std::min(kBlock, x.size() - start);
    ExpShiftedScaled(x.subspan(start, n), shift, 1.0f, absl::MakeSpan(block, n));
    total += SumOf(absl::MakeConstSpan(block, n));
  }
  return total;
}

void TopNIds(absl::Span<const float> x, int32_t n, std::vector<int32_t>* ids) {
  const size_t size = x.size();
  RESTKV_CHECK(n >= 0 && static_cast<size_t>(n) <= size) << "n " << n << ", size " << size;
  const float* data = x.data();
  auto better = [data](int32_t a, int32_t b) {
    return data[a] != data[b] ? data[a] > data[b] : a < b;
  };
  ids->resize(n);
  for (int32_t id = 0; id < n; ++id) (*ids)[id] = id;
  if (n == 0) return;
  // A heap whose front is the worst id kept. Scanning ids in increasing
  // order, a later id displaces it only with a strictly larger value, so a
  // chunk whose max is <= the front's value is skipped after one vector pass.
  std::make_heap(ids->begin(), ids->end(), better);
  auto offer = [&](size_t id) {
    if (data[id] > data[ids->front()]) {
      std::pop_heap(ids->begin(), ids->end(), better);
      ids->back() = static_cast<int32_t>(id);
      std::push_heap(ids->begin(), ids->end(), better);
    }
  };
  size_t id = n;
  for (; id + kChunk <= size; id += kChunk) {
    if (ChunkMax(data + id) <= data[ids->front()]) continue;
    for (size_t j = id; j < id + kChunk; ++j) offer(j);
  }
  for (; id < size; ++id) offer(id);
  std::sort(ids->begin(), ids->end(), better);
}

void IdsAtLeast(absl::Span<const float> x, float threshold, std::vector<int32_t>* ids) {
  const float* data = x.data();
  const size_t size = x.size();
  ids->clear();
  size_t i = 0;
  for (; i + kChunk <= size; i += kChunk) {
    if (ChunkMax(data + i) < threshold) continue;
    for (size_t j = i; j < i + kChunk; ++j) {
      if (data[j] >= threshold) ids->push_back(static_cast<int32_t>(j));
    }
  }
  for (; i < size; ++i) {
    if (data[i] >= threshold) ids->push_back(static_cast<int32_t>(i));
  }
}

}  // namespace restkv::engine
