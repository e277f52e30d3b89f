// AVX-512 VNNI tiles of the K-quant panels (layout in packed_kquant.h):
// kquant_tile.h's loop over 64-byte vectors, so one vector is 4 consecutive
// elements of the panel's 16 rows and one vpdpbusd against 4 broadcast
// activation bytes advances 16 outputs; up to 8 activation rows per pass
// (their 3 accumulator sets fit in the 32 zmm registers).
#include "kernels/cpu/packed_kquant.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512VNNI__)
#include <immintrin.h>

#include <cstring>
#define RESTKV_HAVE_KQUANT_AVX512 1
// GCC 12's AVX-512 headers build some intrinsics from _mm512_undefined_*(),
// which its flow analysis reports as maybe-uninitialised (a false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "kernels/cpu/kquant_tile.h"
#endif

namespace restkv::kernels::cpu::packed_detail {

#if RESTKV_HAVE_KQUANT_AVX512
namespace {

// kquant_tile.h's vector traits over zmm registers: one part, the whole panel.
struct Avx512Vec {
  using I = __m512i;
  using F = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kMaxRows = 8;
  static constexpr int kMaskedBit4Rows = 1;  // the GEMV (see WithBit4)
  static constexpr bool kDirectDot = true;   // vpdpbusd (dot_sum.h)

  static I Load(const uint8_t* p) { return _mm512_load_si512(p); }
  static void StoreI(uint8_t* p, I v) { _mm512_store_si512(p, v); }
  static I And(I a, I b) { return _mm512_and_si512(a, b); }
  static I Or(I a, I b) { return _mm512_or_si512(a, b); }
  // One vpternlogd: a | (b & c) is truth table 0xf8 over (a, b, c).
  static I OrAnd(I a, I b, I c) { return _mm512_ternarylogic_epi32(a, b, c, 0xf8); }
  static I Bytes(char v) { return _mm512_set1_epi8(v); }
  static I ShiftLeft16(I a, int n) { return _mm512_slli_epi16(a, static_cast<unsigned>(n)); }
  static I ShiftRight16(I a, int n) { return _mm512_srli_epi16(a, static_cast<unsigned>(n)); }
  static I Broadcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  static I DotAdd(I acc, I u, I s) { return _mm512_dpbusd_epi32(acc, u, s); }
  // q + 16 (bit 4, clear in q) in the bytes whose plane byte has bit `bit`.
  static I MaskedBit4(I q, I plane, int bit) {
    const __mmask64 set =
        _mm512_test_epi8_mask(plane, _mm512_set1_epi8(static_cast<char>(1 << bit)));
    return _mm512_mask_add_epi8(q, set, q, _mm512_set1_epi8(16));
  }
  static I Zero() { return _mm512_setzero_si512(); }
  static I BroadcastInt(const int32_t* p) { return _mm512_set1_epi32(*p); }

  static F ZeroF() { return _mm512_setzero_ps(); }
  static F ToFloat(I a) { return _mm512_cvtepi32_ps(a); }
  static F Set1(float v) { return _mm512_set1_ps(v); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F FMAdd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F FMSub(F a, F b, F c) { return _mm512_fmsub_ps(a, b, c); }
  static F LoadU8(const uint8_t* p) {
    return _mm512_cvtepi32_ps(
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static F LoadS8(const uint8_t* p) {
    return _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static F LoadHalves(const uint8_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }

  template <int R>
  static void Store(const F (&acc)[R], float* y, int64_t ldy, int /*part*/, int valid) {
    const auto mask = static_cast<__mmask16>((1u << valid) - 1);
    for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(y + r * ldy, mask, acc[r]);
  }
  // One part and num_x <= kMaxRows (KTileFn's contract): one tile call.
  static void Run(const KPartTileFn* tiles, const uint8_t* panel, int64_t nsb,
                  const Q8Activations& x, int64_t row0, int num_x, float* y, int64_t ldy,
                  int valid) {
    tiles[num_x - 1](panel, nsb, x, row0, y, ldy, 0, valid);
  }
};

}  // namespace

KKernels KKernelsAvx512(GgmlType type) { return KQuantKernelsFor<Avx512Vec>(type); }
#else
KKernels KKernelsAvx512(GgmlType) { return {}; }
#endif

}  // namespace restkv::kernels::cpu::packed_detail
