// Worked example of spec §7.2 (one head, N = 12, w = 4, B = 8, d = 2,
// D = 3) shared by the eviction tests, plus the comparison helper they use.
// Test-only header.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace restkv::engine::testdata {

inline constexpr int32_t kN = 12;
inline constexpr int32_t kW = 4;
inline constexpr int32_t kM = kN - kW;
inline constexpr int32_t kD = 2;

// [N][d], post-RoPE.
inline const std::vector<float> kKeys = {2.0f, 0.1f,  0.1f, 0.5f, 0.6f,  0.4f,  -1.0f, 0.2f,
                                         0.1f, -1.0f, 1.1f, 2.0f, 0.4f,  -0.6f, -0.5f, 1.1f,
                                         0.9f, 0.1f,  0.2f, 1.0f, -0.5f, -0.4f, 1.0f,  1.2f};
inline const std::vector<float> kValues = {0.1f,  0.0f, 1.0f,  0.0f,  0.0f, 1.0f, 1.0f, 1.0f,
                                           -1.0f, 0.5f, 2.0f,  -1.0f, 0.5f, 0.5f, 0.0f, -1.0f,
                                           1.0f,  2.0f, -0.5f, 0.0f,  0.0f, 0.5f, 1.0f, -1.0f};
// Window queries (positions 8..11), [w][d].
inline const std::vector<float> kQueries = {1.0f, 0.0f, 1.0f, 0.5f, 0.5f, 1.5f, 0.0f, 2.0f};
// W_O^h, [D = 3][d = 2]; Gram [[2, 1], [1, 5]].
inline const std::vector<float> kWo = {1.0f, 0.0f, 0.0f, 2.0f, 1.0f, 1.0f};
// Its Cholesky factor R = [[sqrt 2, 1/sqrt 2], [0, sqrt 4.5]].
inline const std::vector<float> kR = {1.41421356f, 0.70710678f, 0.0f, 2.12132034f};

// A [w][N] as printed in §7.2.
// clang-format off: one window row per line, as in the design document.
inline const std::vector<float> kProbs = {
    .286104f, .074653f, .106315f, .034296f, .074653f, .151405f, .092294f, .048842f,
    .131438f, 0,        0,        0,        .227783f, .068464f, .094114f, .028288f,
    .040285f, .235981f, .057371f, .055378f, .104645f, .087689f, 0,        0,
    .080776f, .063067f, .067688f, .031096f, .012848f, .440866f, .021835f, .096396f,
    .054750f, .111039f, .019638f, 0,        .028880f, .050847f, .044141f, .033267f,
    .006095f, .424173f, .010732f, .118789f, .028880f, .103123f, .014240f, .136834f};
// clang-format on

inline const std::vector<float> kAbar = {0.157245f, 0.064168f, 0.077758f, 0.032432f,
                                         0.036055f, 0.306455f, 0.047895f, 0.080773f};
inline const std::vector<float> kObar = {0.713128f, -0.235063f};
inline const std::vector<float> kOdds = {0.186584f, 0.068568f, 0.084314f, 0.033519f,
                                         0.037403f, 0.441867f, 0.050305f, 0.087871f};
inline const std::vector<float> kDelta = {0.860161f, 0.758769f, 2.623450f, 2.915494f,
                                          2.460221f, 2.066149f, 1.574519f, 2.243600f};
inline const std::vector<float> kScores = {0.160492f, 0.052028f, 0.221193f, 0.097725f,
                                           0.092020f, 0.912963f, 0.079206f, 0.197147f};
inline const std::vector<float> kSmoothedBeta2000 = {0.150939f, 0.138386f, 0.124692f, 0.275186f,
                                                     0.280621f, 0.275812f, 0.295696f, 0.316722f};
inline const std::vector<float> kSmoothedBeta1 = {0.160492f, 0.138799f, 0.150939f, 0.138386f,
                                                  0.124692f, 0.275186f, 0.280621f, 0.275812f};
inline const std::vector<float> kSmoothedBetaHalf = {0.160492f, 0.150632f, 0.156150f, 0.150444f,
                                                     0.144219f, 0.212626f, 0.205236f, 0.208568f};
inline const std::vector<float> kDeltaNoWo = {0.656643f, 0.370878f, 1.426160f, 1.267942f,
                                              1.864168f, 1.497054f, 0.765337f, 1.045791f};
inline const std::vector<float> kScoresNoWo = {0.122519f, 0.025430f, 0.120245f, 0.042500f,
                                               0.069726f, 0.661499f, 0.038500f, 0.091894f};
inline const std::vector<float> kScoresBefore = {0.213871f, 0.054406f, 0.180436f, 0.087535f,
                                                 0.084569f, 0.903857f, 0.039023f, 0.218499f};
inline const std::vector<float> kAbarMean = {0.155886f, 0.064258f, 0.078065f, 0.031737f,
                                             0.033470f, 0.313106f, 0.045558f, 0.079851f};

// The design document prints 6 decimals, so a printed value p stands for
// [p - 5e-7, p + 5e-7]; the rest of the tolerance is the 1e-5 relative of §7.
// NOTE(restkv): the half-unit term matters only for entries below ~0.05.
inline float PrintedTolerance(float want) { return 1e-5f * std::abs(want) + 5.01e-7f; }

// Expects got[i] to match the printed want[i] for every i.
inline void ExpectPrinted(const float* got, const std::vector<float>& want, const char* what) {
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], PrintedTolerance(want[i])) << what << "[" << i << "]";
  }
}

// Expects |got - want| <= 1e-5 * |want| (+ a tiny floor for exact zeros).
inline void ExpectRelative(const float* got, const std::vector<double>& want, const char* what) {
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-5 * std::abs(want[i]) + 1e-9) << what << "[" << i << "]";
  }
}

}  // namespace restkv::engine::testdata
