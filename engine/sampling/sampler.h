// Sampler: one request's choice of the next token from next-token logits.
//
// Stages, in vLLM's order; a stage whose parameter is at its default is
// skipped entirely:
//
//   logits ─► logit_bias ─► penalties ─► temperature == 0 ? argmax (ties: lowest id)
//                          else: temperature ─► top_k ─► top_p ─► min_p ─► draw
//
//   logit_bias   each (id, bias) pair added to that id's logit.
//   penalties    repetition (tokens in the prompt or the output, once per id:
//                logit > 0 ? logit / r : logit * r), then frequency
//                (logit -= f * count in output), then presence
//                (logit -= p if in output). Written back into `logits`.
//   temperature  p_i ∝ exp((l_i - l_max) / T), a max-shifted (stable) softmax.
//   top_k        keeps the k largest logits, plus any tied with the k-th
//                (vLLM and HF keep ties too). Selection, never a full sort.
//   top_p        over the top_k survivors: ranked by probability (ties: lower
//                id first), a token is kept while the mass ranked above it is
//                < top_p, so the first token is always kept. Large candidate
//                sets are bucketed by log probability first, so only the
//                bucket where the cut falls is sorted, never the vocabulary.
//   min_p        keeps tokens with p >= min_p * p_max (p_max is always kept).
//   draw         inverse CDF over the survivors with a uniform in [0, 1).
//
// NOTE(restkv): randomness is a std::mt19937_64 per request, seeded
// with SplitMix64(seed). mt19937_64's output sequence is fixed by the C++
// standard, and the uniform double is made here from its top 53 bits (not by
// std::uniform_real_distribution, whose algorithm differs between standard
// libraries), so a seed gives the same tokens for the same logits on every
// platform (up to last-bit differences in the weights between compilers,
// e.g. FMA contraction, which can flip a draw that lands on a boundary).
// Greedy sampling draws nothing, so it ignores the seed.
//
// NOTE(restkv): Sample() does not record the token it returns. The
// caller calls Accept() for each token that becomes part of the output: a
// token that ends generation (EOS, a stop id) is not output and must not be
// penalised, and a request resumed after preemption may need to replay tokens
// it did not sample in this Sampler. Penalties only ever see Accept()ed tokens.
//
// Thread safety: none; one Sampler per request, used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "engine/sampling/sampling_params.h"

namespace restkv::engine {

// Temperatures below this are greedy (vLLM's _SAMPLING_EPS): dividing logits
// by a smaller number overflows float for no change in the outcome.
inline constexpr float kGreedyTemperature = 1e-5f;

class Sampler {
 public:
  // REQUIRES: params.Validate(vocab).ok() for the vocab the logits will have.
  Sampler(const SamplingParams& params, uint64_t seed);

  // Applies logit_bias and the penalties to `logits` in place, then returns the chosen token
  // id in [0, logits.size()). Advances the generator unless greedy.
  // logits: [vocab], the raw next-token logits; modified in place (bias and
  //   penalties are written back; later stages work on scratch copies).
  // prompt_tokens: the request's prompt, for the repetition penalty.
  // REQUIRES: logits non-empty and free of NaN; every prompt token and every
  //   Accept()ed token in [0, logits.size()).
  [[nodiscard]] int32_t Sample(absl::Span<float> logits, absl::Span<const int32_t> prompt_tokens);

  // Records `token` as part of the output, for the frequency, presence and
  // repetition penalties of later calls. REQUIRES: token >= 0.
  void Accept(int32_t token);

  // The penalty stage alone, as Sample() applies it (exposed so the penalty
  // arithmetic can be checked exactly). Same REQUIRES as Sample().
  void ApplyPenalties(absl::Span<float> logits, absl::Span<const int32_t> prompt_tokens) const;

  // Output token id -> times Accept()ed.
  [[nodiscard]] const absl::flat_hash_map<int32_t, int32_t>& output_counts() const {
    return output_counts_;
  }

 private:
  struct Candidate {
    // Uninitialised by default: the scratch vector is resized to the
    // vocabulary every step, and zeroing it first would be a wasted pass.
    Candidate() {}  // NOLINT(modernize-use-equals-default): = default would zero-fill
    Candidate(float w, int32_t i) : weight(w), id(i) {}
    float weight;  // exp((logit - l_max) / T) = p / p_max, in [0, 1]
    int32_t id;
  };

  [[nodiscard]] bool PenaltiesOff() const;
  // The k-th largest logit. REQUIRES: 1 <= k < logits.size().
  float KthLargest(absl::Span<const float> logits, int32_t k, float max_logit);
  // From dense weights_, fills candidates_ with every token that could be in
  // the nucleus; returns the total weight of the whole vocabulary.
  double CandidatesForDenseTopP();
  // Cuts candidates_ to the nucleus (reordering them): the tokens ranked
  // before the point where the mass reaches `target` (top_p * total).
  void ApplyTopP(double target);
  // Sorts as much of candidates_[first, last) as needed, by descending
  // weight, to find where the nucleus ends, given `above` mass ranked before
  // `first`; returns that end (first <= end <= last).
  size_t NucleusEnd(size_t first, size_t last, double above, double target);
  // Drops candidates with weight < min_p (the max weight is 1).
  void ApplyMinP();
  // An index drawn with probability weights[i] / sum(weights).
  // REQUIRES: some weight > 0.
  size_t DrawIndex(absl::Span<const float> weights);
  double Uniform();  // [0, 1), 53 random bits

  SamplingParams params_;
  bool greedy_;
  std::mt19937_64 rng_;
  absl::flat_hash_map<int32_t, int32_t> output_counts_;
  // Scratch reused across calls so a step allocates nothing.
  std::vector<Candidate> candidates_;
  std::vector<int32_t> ids_;
  std::vector<int32_t> bucket_count_;  // [kNumBuckets]
  std::vector<float> bucket_values_;
  std::vector<double> bucket_mass_;  // [kNumWeightBuckets]
  std::vector<int32_t> bucket_of_;   // [candidates]
  std::vector<float> way_mass_;      // [4 * kNumWeightBuckets]
  std::vector<Candidate> boundary_;  // [candidates]
  std::vector<float> weights_;       // [vocab] dense path, else [candidates]
  std::vector<double> block_sums_;   // [weights / kDrawBlock]
};

}  // namespace restkv::engine
