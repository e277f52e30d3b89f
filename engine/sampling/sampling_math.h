// Vocabulary-wide kernels shared by the Sampler and ComputeLogprobs.
//
// A decode step samples from [vocab] logits per request, vocab 32k-256k, so
// these run once per generated token. The hot loops are written with GCC/Clang
// vector extensions (16 floats at a time, no branches), so they vectorise at
// any optimisation level and for whatever -march allows; none allocates.
//
// Thread safety: pure functions.
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace restkv::engine {

// The largest value. REQUIRES: x non-empty, no NaN.
float MaxOf(absl::Span<const float> x);

// Index of the largest value; ties go to the lowest index.
// REQUIRES: x non-empty, no NaN.
int32_t Argmax(absl::Span<const float> x);

// out[i] = exp((x[i] - shift) * scale): softmax numerators, shifted by the
// max so that no exponent is positive. Relative error within a few float ulp
// of std::exp; exponents below -87 (including -inf) give 0, where exp would
// be subnormal. `out` may be `x` itself.
// REQUIRES: out.size() == x.size(); shift >= every x[i]; scale > 0; no NaN.
void ExpShiftedScaled(absl::Span<const float> x, float shift, float scale, absl::Span<float> out);

// x[i] = 0 where x[i] < floor (min_p on dense weights).
void ZeroBelow(absl::Span<float> x, float floor);

// Sum of x, in float lanes: use on short spans (a few hundred values in
// [0, 1]) and accumulate those sums in double.
float SumOf(absl::Span<const float> x);

// Sum of the x[i] >= floor, as SumOf.
float SumOfAtLeast(absl::Span<const float> x, float floor);

// Σ exp(x[i] - shift) in double, from float exps of blocks.
// REQUIRES: shift >= every x[i], shift finite, no NaN.
double SumExpShifted(absl::Span<const float> x, float shift);

// The ids of the n largest values, sorted descending, ties by lower id.
// O(size) plus O(n log n) per displacement; meant for n up to a few thousand.
// REQUIRES: 0 <= n <= x.size(), no NaN.
void TopNIds(absl::Span<const float> x, int32_t n, std::vector<int32_t>* ids);

// The ids i with x[i] >= threshold, in increasing order. Chunks with no such
// value cost one vector pass, so a high threshold reads the vocabulary once.
void IdsAtLeast(absl::Span<const float> x, float threshold, std::vector<int32_t>* ids);

// Bucket of a value `distance` (>= 0, may be +inf) below the maximum, in
// steps of 1/kBucketsPerUnit; everything past kNumBuckets - 1 steps shares
// the last bucket. Used to select a k-th largest value with counting passes
// instead of sorting the vocabulary.
inline constexpr int32_t kNumBuckets = 4096;
inline constexpr float kBucketsPerUnit = 128.0f;  // so the last bucket starts 32 below the max
inline int32_t BucketBelowMax(float distance) {
  const float b = distance * kBucketsPerUnit;
  return b < static_cast<float>(kNumBuckets - 1) ? static_cast<int32_t>(b) : kNumBuckets - 1;
}

// Bucket of a weight w in [0, 1] on a log scale, read off its float bits:
// 0 for w == 1, then 16 buckets per halving (each spans a factor of 2^(1/16),
// about 4.4%), kNumWeightBuckets - 1 or below for w == 0. Larger weights never
// get a larger bucket. Used to find a top_p cut with counting passes.
inline constexpr int32_t kNumWeightBuckets = 2048;
inline int32_t WeightBucket(float w) {
  constexpr uint32_t kOneBits = 0x3F800000u;  // 1.0f
  return static_cast<int32_t>((kOneBits - std::bit_cast<uint32_t>(w)) >> 19);
}

}  // namespace restkv::engine
