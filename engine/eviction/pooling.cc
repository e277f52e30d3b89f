#include "engine/eviction/pooling.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>

#include "common/check.h"

namespace restkv::engine {
namespace {

// Radix bins of the first selection pass: the top 12 bits of the key (sign,
// exponent and 3 mantissa bits), i.e. bins 12.5% wide in value.
constexpr int kBinShift = 20;
constexpr size_t kNumBins = size_t{1} << (32 - kBinShift);

// Order-preserving map of a float to uint32 (a < b iff Key(a) < Key(b)).
// NaN maps to 0, below -inf; -0 sits just below +0. Branch-free so that the
// key loop vectorises.
inline uint32_t Key(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  const uint32_t key = bits ^ ((0u - (bits >> 31)) | 0x80000000u);
  const bool is_nan = (bits & 0x7fffffffu) > 0x7f800000u;
  return is_nan ? 0u : key;
}

// Sum of the positions of the top_k largest entries of row[0..n), ties at the
// threshold going to the lower index. Pass 1 keys the row and histograms the
// keys' top bits; pass 2 sums the positions in bins above the threshold bin
// and collects that bin, whose k-th key is then found by nth_element.
int64_t TopKPositionSum(const float* row, int64_t n, int64_t top_k, DriftScratch* scratch) {
  std::vector<uint32_t>& all = scratch->all_keys;
  if (all.size() < static_cast<size_t>(n)) all.resize(n);
  uint32_t* key = all.data();
  for (int64_t j = 0; j < n; ++j) key[j] = Key(row[j]);
  // Two interleaved histograms halve the store-to-load chains on busy bins.
  std::vector<uint32_t>& hist = scratch->histogram;
  hist.assign(2 * kNumBins, 0);
  uint32_t* h0 = hist.data();
  uint32_t* h1 = h0 + kNumBins;
  int64_t j = 0;
  for (; j + 1 < n; j += 2) {
    ++h0[key[j] >> kBinShift];
    ++h1[key[j + 1] >> kBinShift];
  }
  if (j < n) ++h0[key[j] >> kBinShift];
  size_t bin = kNumBins;
  int64_t above = 0;  // entries in bins above `bin`
  while (above + h0[bin - 1] + h1[bin - 1] < top_k) {
    --bin;
    above += h0[bin] + h1[bin];
  }
  --bin;
  // The threshold bin holds the remaining top_k - above of the top_k.
  // Branch-free: which side of the threshold bin a key falls on is random.
  const uint64_t lowest_above = static_cast<uint64_t>(bin + 1) << kBinShift;
  const uint32_t bin_start = static_cast<uint32_t>(bin) << kBinShift;
  const uint32_t bin_width = 1u << kBinShift;
  std::vector<uint32_t>& keys = scratch->keys;
  std::vector<int32_t>& positions = scratch->positions;
  if (keys.size() < static_cast<size_t>(n)) {
    keys.resize(n);
    positions.resize(n);
  }
  int64_t sum = 0;
  int64_t in_bin = 0;
  for (int64_t i = 0; i < n; ++i) {
    sum += key[i] >= lowest_above ? i : 0;
    keys[in_bin] = key[i];
    positions[in_bin] = static_cast<int32_t>(i);
    in_bin += key[i] - bin_start < bin_width;
  }
  const int64_t need = top_k - above;
  std::vector<uint32_t>& select = scratch->select;
  select.assign(keys.begin(), keys.begin() + in_bin);
  std::nth_element(select.begin(), select.begin() + (need - 1), select.end(),
                   std::greater<uint32_t>());
  const uint32_t threshold = select[need - 1];
  int64_t taken = 0;
  for (int64_t i = 0; i < in_bin; ++i) taken += keys[i] > threshold;
  for (int64_t i = 0; i < in_bin; ++i) {
    if (keys[i] > threshold || (keys[i] == threshold && taken++ < need)) sum += positions[i];
  }
  return sum;
}

}  // namespace

double WindowDrift(const float* probs, int32_t num_window, int32_t num_tokens, int32_t top_k,
                   DriftScratch* scratch) {
  RESTKV_CHECK(num_window >= 2 && num_window % 2 == 0) << num_window;
  RESTKV_CHECK(top_k >= 1 && top_k <= num_tokens) << top_k << " of " << num_tokens;
  const int32_t half = num_window / 2;
  int64_t early = 0;
  int64_t late = 0;
  for (int32_t t = 0; t < num_window; ++t) {
    const int64_t s =
        TopKPositionSum(probs + static_cast<int64_t>(t) * num_tokens, num_tokens, top_k, scratch);
    (t < half ? early : late) += s;
  }
  // Mean top-K position of the early half minus that of the late half.
  return 2.0 * static_cast<double>(early - late) /
         (static_cast<double>(num_window) * static_cast<double>(top_k));
}

AdaptiveKernel AdaptiveKernelFor(double drift, double beta, int32_t k_min) {
  RESTKV_CHECK(beta > 0.0) << beta;
  RESTKV_CHECK(k_min >= 1 && k_min % 2 == 1) << k_min;
  const double steps = std::floor(drift / beta);
  AdaptiveKernel kernel;
  const double widen = std::floor(std::abs(drift) / beta);
  // Clamp before converting: a drift this large is beyond any prompt anyway.
  const double half_max = 1e9;
  kernel.size = std::max<int32_t>(k_min, 2 * static_cast<int32_t>(std::min(widen, half_max)) + 1);
  kernel.shift =
      static_cast<int32_t>(std::clamp(drift > 0.0 ? steps : steps + 1.0, -half_max, half_max));
  return kernel;
}

void ShiftedReplicateBox(const float* in, int64_t num, int32_t size, int32_t shift, float* out) {
  RESTKV_CHECK(size >= 1 && size % 2 == 1 && num >= 1) << size << " " << num;
  const int64_t half = size / 2;
  auto at = [&](int64_t i) { return double{in[std::clamp<int64_t>(i, 0, num - 1)]}; };
  // Running sum over the clamped window [j + shift - half, j + shift + half],
  // in double so 128k slides add no visible drift.
  double sum = 0.0;
  for (int64_t i = shift - half; i <= shift + half; ++i) sum += at(i);
  const double inv = 1.0 / size;
  for (int64_t j = 0; j < num; ++j) {
    out[j] = static_cast<float>(sum * inv);
    sum += at(j + 1 + shift + half) - at(j + shift - half);
  }
}

void AvgPoolZeroPad(const float* in, int64_t num, int32_t size, float* out) {
  RESTKV_CHECK(size >= 1 && size % 2 == 1) << size;
  const int64_t half = size / 2;
  auto at = [&](int64_t i) { return i < 0 || i >= num ? 0.0 : double{in[i]}; };
  double sum = 0.0;
  for (int64_t i = -half; i <= half; ++i) sum += at(i);
  const double inv = 1.0 / size;
  for (int64_t j = 0; j < num; ++j) {
    out[j] = static_cast<float>(sum * inv);
    sum += at(j + 1 + half) - at(j - half);
  }
}

void MaxPool(const float* in, int64_t num, int32_t size, float* out) {
  RESTKV_CHECK(size >= 1 && size % 2 == 1) << size;
  const int64_t half = size / 2;
  // Monotone queue of indices whose values decrease from front to back; the
  // front is the maximum of the current window [j - half, j + half].
  std::deque<int64_t> queue;
  int64_t next = 0;  // first index not yet pushed
  for (int64_t j = 0; j < num; ++j) {
    const int64_t hi = std::min(num - 1, j + half);
    for (; next <= hi; ++next) {
      while (!queue.empty() && in[queue.back()] <= in[next]) queue.pop_back();
      queue.push_back(next);
    }
    while (queue.front() < j - half) queue.pop_front();
    out[j] = in[queue.front()];
  }
}

}  // namespace restkv::engine
