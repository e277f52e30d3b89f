#include "engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "common/check.h"
#include "engine/sampling/sampling_math.h"

namespace restkv::engine {
namespace {

// Up to this k, top_k keeps a heap of the k best logits in one pass (TopNIds);
// above it, a counting pass over buckets finds the k-th value.
constexpr int32_t kMaxHeapTopK = 1024;

// top_p sorts up to this many candidates outright (top_k usually leaves
// fewer). Above it, candidates are first bucketed by log weight.
constexpr size_t kTopPSortAll = 2048;
// The first block that NucleusEnd sorts; later blocks grow.
constexpr size_t kTopPFirstHead = 256;

// Draws walk per-block sums first, then one block, instead of the vocabulary.
constexpr size_t kDrawBlock = 256;

// top_p over the whole vocabulary ignores tokens below this weight (p / p_max)
// when the heavier ones already hold top_p of the mass.
constexpr float kTailWeight = 1e-4f;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

Sampler::Sampler(const SamplingParams& params, uint64_t seed)
    : params_(params), greedy_(params.temperature < kGreedyTemperature), rng_(SplitMix64(seed)) {}

void Sampler::Accept(int32_t token) {
  RESTKV_CHECK_GE(token, 0);
  ++output_counts_[token];
}

double Sampler::Uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

bool Sampler::PenaltiesOff() const {
  return params_.repetition_penalty == 1.0f && params_.frequency_penalty == 0.0f &&
         params_.presence_penalty == 0.0f;
}

void Sampler::ApplyPenalties(absl::Span<float> logits,
                             absl::Span<const int32_t> prompt_tokens) const {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  auto check_id = [vocab](int32_t t) {
    RESTKV_CHECK(t >= 0 && t < vocab) << "token " << t << " is outside the vocabulary of " << vocab;
  };
  const float r = params_.repetition_penalty;
  if (r != 1.0f) {
    // Once per distinct id, whether it is in the prompt, the output or both.
    // (A vocab-bit set per call: cheap, and this stage is off by default.)
    std::vector<bool> done(vocab, false);
    auto penalize = [&](int32_t t) {
      check_id(t);
      if (done[t]) return;
      done[t] = true;
      logits[t] = logits[t] > 0.0f ? logits[t] / r : logits[t] * r;
    };
    for (int32_t t : prompt_tokens) penalize(t);
    for (const auto& [t, count] : output_counts_) penalize(t);
  }
  const float f = params_.frequency_penalty;
  const float p = params_.presence_penalty;
  if (f != 0.0f || p != 0.0f) {
    // Two subtractions, as vLLM does them, so the float results match.
    for (const auto& [t, count] : output_counts_) {
      check_id(t);
      logits[t] -= f * static_cast<float>(count);
      logits[t] -= p;
    }
  }
}

int32_t Sampler::Sample(absl::Span<float> logits, absl::Span<const int32_t> prompt_tokens) {
  RESTKV_CHECK(!logits.empty());
  // logit_bias first: vLLM applies it with the other logits processors,
  // before the penalties. Validate() keeps every id inside the vocabulary.
  for (const auto& [id, bias] : params_.logit_bias) logits[id] += bias;
  if (!PenaltiesOff()) ApplyPenalties(logits, prompt_tokens);
  if (greedy_) return Argmax(logits);
  const float max_logit = MaxOf(logits);
  // All -inf (nothing allowed) or some +inf (certain): no distribution to
  // draw from, and the softmax would be NaN. Take the argmax.
  if (!std::isfinite(max_logit)) return Argmax(logits);

  const int32_t vocab = static_cast<int32_t>(logits.size());
  const bool top_k_on = params_.top_k > 0 && params_.top_k < vocab;
  const bool top_p_on = params_.top_p < 1.0f;
  const float inv_t = 1.0f / params_.temperature;
  double total = 0.0;  // of the candidates' weights, before top_p
  if (!top_k_on) {
    // Weights p / p_max = exp((l - l_max) / T) over the whole vocabulary;
    // shifting by the max keeps them in [0, 1] with the max's exactly 1.
    weights_.resize(vocab);
    ExpShiftedScaled(logits, max_logit, inv_t, absl::MakeSpan(weights_));
    if (!top_p_on) {
      // The default request: min_p at most, then a draw. No candidate list.
      // weight = p / p_max, so min_p compares directly.
      if (params_.min_p > 0.0f) ZeroBelow(absl::MakeSpan(weights_), params_.min_p);
      return static_cast<int32_t>(DrawIndex(weights_));
    }
    total = CandidatesForDenseTopP();
  } else {
    // Ties with the k-th logit are kept, as in vLLM, so there may be > k.
    const float threshold = KthLargest(logits, params_.top_k, max_logit);
    IdsAtLeast(logits, threshold, &ids_);
    candidates_.resize(ids_.size());
    weights_.resize(ids_.size());
    for (size_t i = 0; i < ids_.size(); ++i) weights_[i] = logits[ids_[i]];
    ExpShiftedScaled(weights_, max_logit, inv_t, absl::MakeSpan(weights_));
    for (size_t i = 0; i < candidates_.size(); ++i) {
      candidates_[i] = Candidate(weights_[i], ids_[i]);
      total += weights_[i];
    }
  }
  if (top_p_on) ApplyTopP(static_cast<double>(params_.top_p) * total);
  if (params_.min_p > 0.0f) ApplyMinP();
  weights_.resize(candidates_.size());
  for (size_t i = 0; i < candidates_.size(); ++i) weights_[i] = candidates_[i].weight;
  return candidates_[DrawIndex(weights_)].id;
}

double Sampler::CandidatesForDenseTopP() {
  // If the tokens with weight >= kTailWeight already hold top_p of the mass,
  // the mass ranked above any lighter token is >= top_p, so none of them can
  // be in the nucleus: leave them out. For a peaked distribution that is
  // nearly the whole vocabulary, and top_p then costs little more than T.
  const size_t n = weights_.size();
  const size_t num_blocks = (n + kDrawBlock - 1) / kDrawBlock;
  block_sums_.resize(num_blocks);  // here: the head's weight per block
  double total = 0.0;
  double head = 0.0;
  for (size_t b = 0; b < num_blocks; ++b) {
    const auto block = absl::MakeConstSpan(weights_).subspan(b * kDrawBlock, kDrawBlock);
    total += SumOf(block);
    block_sums_[b] = SumOfAtLeast(block, kTailWeight);
    head += block_sums_[b];
  }
  const bool drop_tail = head >= static_cast<double>(params_.top_p) * total;
  const float floor = drop_tail ? kTailWeight : 0.0f;
  candidates_.resize(n);
  size_t kept = 0;
  for (size_t b = 0; b < num_blocks; ++b) {
    if (drop_tail && block_sums_[b] == 0.0) continue;  // nothing >= floor here
    const size_t end = std::min(n, (b + 1) * kDrawBlock);
    for (size_t i = b * kDrawBlock; i < end; ++i) {  // branch-free compaction
      candidates_[kept] = Candidate(weights_[i], static_cast<int32_t>(i));
      kept += weights_[i] >= floor;
    }
  }
  candidates_.resize(kept);
  return total;
}

float Sampler::KthLargest(absl::Span<const float> logits, int32_t k, float max_logit) {
  if (k <= kMaxHeapTopK) {
    TopNIds(logits, k, &ids_);
    return logits[ids_.back()];
  }
  // Count logits per bucket below the max, find the bucket holding the k-th,
  // and select within that bucket only.
  bucket_count_.assign(kNumBuckets, 0);
  for (float l : logits) ++bucket_count_[BucketBelowMax(max_logit - l)];
  int32_t bucket = 0;
  int32_t above = 0;  // logits in buckets before `bucket`
  while (above + bucket_count_[bucket] < k) above += bucket_count_[bucket++];
  bucket_values_.clear();
  for (float l : logits) {
    if (BucketBelowMax(max_logit - l) == bucket) bucket_values_.push_back(l);
  }
  const auto kth = bucket_values_.begin() + (k - above - 1);
  std::nth_element(bucket_values_.begin(), kth, bucket_values_.end(), std::greater<float>());
  return *kth;
}

void Sampler::ApplyTopP(double target) {
  const size_t n = candidates_.size();
  if (n <= kTopPSortAll) {
    candidates_.resize(NucleusEnd(0, n, 0.0, target));
    return;
  }
  // Bucket by log weight, highest first, and find the bucket in which the
  // mass reaches the target: the buckets before it are kept whole, the ones
  // after it dropped, and only its own members need sorting.
  bucket_of_.resize(n);
  for (size_t i = 0; i < n; ++i) bucket_of_[i] = WeightBucket(candidates_[i].weight);
  // Four interleaved histograms, so that runs of tokens in one bucket do not
  // serialise on a single memory location.
  constexpr size_t kWays = 4;
  way_mass_.assign(kWays * kNumWeightBuckets, 0.0f);
  size_t i = 0;
  for (; i + kWays <= n; i += kWays) {
    for (size_t w = 0; w < kWays; ++w) {
      way_mass_[w * kNumWeightBuckets + bucket_of_[i + w]] += candidates_[i + w].weight;
    }
  }
  for (; i < n; ++i) way_mass_[bucket_of_[i]] += candidates_[i].weight;
  bucket_mass_.assign(kNumWeightBuckets, 0.0);
  for (size_t w = 0; w < kWays; ++w) {
    for (int32_t b = 0; b < kNumWeightBuckets; ++b) {
      bucket_mass_[b] += way_mass_[w * kNumWeightBuckets + b];
    }
  }
  double above = 0.0;  // mass of the buckets before `cut`
  int32_t cut = 0;
  while (cut < kNumWeightBuckets - 1 && above + bucket_mass_[cut] < target) {
    above += bucket_mass_[cut++];
  }
  // Branch-free compaction (whether a token is kept is a coin flip to the
  // branch predictor): kept ones move down in place, the cut bucket's aside.
  boundary_.resize(n);
  size_t num_kept = 0;
  size_t num_boundary = 0;
  for (size_t k = 0; k < n; ++k) {
    const Candidate c = candidates_[k];
    candidates_[num_kept] = c;
    num_kept += bucket_of_[k] < cut;
    boundary_[num_boundary] = c;
    num_boundary += bucket_of_[k] == cut;
  }
  candidates_.resize(num_kept);
  candidates_.insert(candidates_.end(), boundary_.begin(), boundary_.begin() + num_boundary);
  candidates_.resize(NucleusEnd(num_kept, num_kept + num_boundary, above, target));
}

size_t Sampler::NucleusEnd(size_t first, size_t last, double above, double target) {
  auto before = [](const Candidate& a, const Candidate& b) {
    return a.weight != b.weight ? a.weight > b.weight : a.id < b.id;
  };
  // [first, sorted) is in final order; each round selects and sorts the next
  // block, larger than the last, so a small nucleus costs a small sort. A
  // range already in order (a flat run of tied weights, kept in id order by
  // the stable compactions) needs no sorting at all.
  auto begin = candidates_.begin();
  const bool in_order = std::is_sorted(begin + first, begin + last, before);
  size_t sorted = first;
  size_t head = in_order ? last : std::min(last, first + kTopPFirstHead);
  while (true) {
    if (!in_order) {
      if (head < last) std::nth_element(begin + sorted, begin + head, begin + last, before);
      std::sort(begin + sorted, begin + head, before);
    }
    for (size_t i = sorted; i < head; ++i) {
      // vLLM drops a token when the ascending cumulative probability up to
      // and including it is <= 1 - top_p, i.e. when the mass ranked above it
      // is >= top_p.
      if (above >= target) return i;
      above += candidates_[i].weight;
    }
    if (head == last) return last;
    sorted = head;
    head = std::min(last, sorted + 4 * (sorted - first));
  }
}

void Sampler::ApplyMinP() {
  // Weights are p / p_max (the max logit's weight is exactly 1 and survives
  // top_k and top_p), so the cut needs no normalisation.
  const float min_p = params_.min_p;
  candidates_.erase(std::remove_if(candidates_.begin(), candidates_.end(),
                                   [min_p](const Candidate& c) { return c.weight < min_p; }),
                    candidates_.end());
}

size_t Sampler::DrawIndex(absl::Span<const float> weights) {
  RESTKV_CHECK(!weights.empty());
  const size_t num_blocks = (weights.size() + kDrawBlock - 1) / kDrawBlock;
  block_sums_.resize(num_blocks);
  double total = 0.0;
  for (size_t b = 0; b < num_blocks; ++b) {
    block_sums_[b] = SumOf(weights.subspan(b * kDrawBlock, kDrawBlock));
    total += block_sums_[b];
  }
  const double u = Uniform() * total;
  double cum = 0.0;
  size_t b = 0;
  while (b + 1 < num_blocks && cum + block_sums_[b] <= u) cum += block_sums_[b++];
  const size_t end = std::min(weights.size(), (b + 1) * kDrawBlock);
  for (size_t i = b * kDrawBlock; i < end; ++i) {
    cum += weights[i];
    if (weights[i] > 0.0f && u < cum) return i;
  }
  // Rounding put u at (or a hair past) the end of this block: take the last
  // token with non-zero weight at or before it. One exists: the max has weight 1.
  for (size_t i = end; i-- > 0;) {
    if (weights[i] > 0.0f) return i;
  }
  return 0;
}

}  // namespace restkv::engine
