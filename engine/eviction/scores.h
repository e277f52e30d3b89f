// Scoring building blocks of the KV eviction policies (spec §2.1–§2.3,
// §5): causal window attention, temporal aggregation of its rows, and the
// ReST-KV layer-wise output-reconstruction indicator.
//
// Legend: N = prompt tokens, w = observation-window rows (the last w prompt
// tokens), M = N - w candidate (evictable) tokens, d = head dim.
// Window row t is the query at position p_t = M + t; it sees keys j <= p_t.
//
// Everything is fp32 in and out; sums over N or M accumulate in double. The
// functions are pure and thread-compatible: callers run one head per thread
// and give each thread its own ScoringScratch.
#pragma once

#include <cstdint>
#include <vector>

namespace restkv::engine {

// How the w window rows are folded into one score per key (§2.2).
enum class TemporalMode {
  kEma,     // oldest row first: e <- alpha*row_t + (1-alpha)*e (default)
  kMean,    // plain mean of the rows
  kLast,    // newest row only (the release's "none")
  kInvEma,  // the EMA recursion over the rows in reverse (newest first)
};

// Which reconstruction indicator ReST-KV computes (§2.3).
enum class MetricMode {
  kAfter,   // EMA'd attention, candidate-only output obar (default)
  kBefore,  // per-row indicator with the full row output o_t, then EMA
};

// Reusable per-thread buffers; grown on demand, never shrunk, so a thread
// that scores many heads allocates only on its first (largest) head.
struct ScoringScratch {
  std::vector<float> diff;   // [256][d] R (center - v_j) for a block of candidates
  std::vector<float> block;  // [256][d] R v_j (before mode)
  std::vector<float> proj;   // [w][d] R o_t (before mode)
  std::vector<float> rows;   // [d] obar (after mode)
  std::vector<float> acc;    // [M] abar (after mode)
};

// Weights c_t (t = 0 oldest) with aggregate = sum_t c_t * row_t; for kEma
// row 0 gets (1-alpha)^(n-1) and row t >= 1 gets alpha*(1-alpha)^(n-1-t).
// Weights sum to 1 for every mode.
// REQUIRES: num_rows >= 1, 0 < alpha <= 1 for the EMA modes.
void TemporalWeights(TemporalMode mode, float alpha, int32_t num_rows, float* weights);

// out[j] = sum_t weights[t] * rows[t * row_stride + j] for j < num_cols.
void AggregateRows(const float* weights, const float* rows, int32_t num_rows, int64_t row_stride,
                   int64_t num_cols, float* out);

// probs[t][j] = softmax over j <= num_tokens - num_window + t of
// <q_t, k_j>/sqrt(d); masked keys get exactly 0.
// q: row t at q + t * q_stride (d floats each); k: [num_tokens][d] (post-RoPE).
// probs: [num_window][num_tokens].
// REQUIRES: 1 <= num_window <= num_tokens.
void WindowAttention(const float* q, int64_t q_stride, const float* k, int32_t num_window,
                     int32_t num_tokens, int32_t head_dim, float* probs);

// abar/(1-abar) with abar clamped to [0, 1 - 1e-6] so that a sink-dominated
// head cannot produce inf or NaN (§2.7).
float OddsRatio(float abar);

// obar = sum_{j<num_candidates} abar[j] * v[j] (not renormalised, §8.5).
// v: [>= num_candidates][d]; obar: [d].
void CandidateOutput(const float* abar, const float* v, int64_t num_candidates, int32_t head_dim,
                     float* obar);

// delta[j] = || R (center - v[j]) ||_2 for j < num_candidates, where r is the
// row-major upper-triangular factor [d][d] with R^T R = W_O^h^T W_O^h, or
// null for the plain Euclidean distance (use_wo off).
void ProjectedDistances(const float* center, const float* v, int64_t num_candidates,
                        int32_t head_dim, const float* r, ScoringScratch* scratch, float* delta);

// The "after" indicator given the pieces: s[j] = odds(abar[j]) * delta[j]^tau.
void AfterScores(const float* abar, const float* delta, int64_t num_candidates, float tau,
                 float* scores);

// Knobs of the reconstruction indicator.
struct IndicatorParams {
  MetricMode metric = MetricMode::kAfter;
  TemporalMode temporal = TemporalMode::kEma;
  float alpha = 0.3f;
  bool use_norm = false;  // before mode only: divide by ||R o_t||
  float tau = 1.0f;       // after mode only
};

// The whole ReST-KV indicator of one query head: scores[j] for j < M from the
// window probabilities (WindowAttention), the head's values v [N][d] and its
// factor r (or null). Temporal weights come from params (kEma by default).
// scores: [M] with M = num_tokens - num_window.
void ReconstructionScores(const IndicatorParams& params, const float* probs, int32_t num_window,
                          int32_t num_tokens, const float* v, int32_t head_dim, const float* r,
                          ScoringScratch* scratch, float* scores);

// Reference H2O scores (§5): out[h][j] = sum over all prompt queries t >= j of
// the causal attention A_h[t, j]. O(N^2 d) per head; a plain oracle for the
// fused accumulation inside prefill attention, and for tests.
// q: [N][H][d]; k: [Hkv][N][d]; out: [H][N]. Query head h reads KV head h/(H/Hkv).
void H2oReferenceScores(const float* q, const float* k, int32_t num_tokens, int32_t num_heads,
                        int32_t num_kv_heads, int32_t head_dim, float* out);

}  // namespace restkv::engine
