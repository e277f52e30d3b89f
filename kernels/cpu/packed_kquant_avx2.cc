// AVX2 tiles of the K-quant panels (layout in packed_kquant.h), for CPUs
// without AVX-512 and for RESTKV_CPU_ISA=avx2: kquant_tile.h's loop over
// 32-byte vectors, so each 64-byte panel vector is read as two halves (rows
// 0..7, rows 8..15), each half a separate pass over the panel so that the
// accumulators of 4 activation rows stay in the 16 ymm registers
// (avx2_tile.h). Unsigned x signed byte dots use vpdpbusd where the build has
// it, else pmaddubsw, with the int16 pair sums of a few dots added before one
// pmaddwd widens them (dot_sum.h; no saturation: 6-bit weights x 8-bit
// activations, a pair sums to at most 2·63·127).
#include "kernels/cpu/packed_kquant.h"

// Built twice: as itself, and by packed_kquant_avxvnni.cc (RESTKV_AVX2_TILES_VNNI,
// -mavxvnni) as KKernelsAvxVnni, which exists only where vpdpbusd does.
#if RESTKV_AVX2_TILES_VNNI
#define RESTKV_KTILE_FN KKernelsAvxVnni
#else
#define RESTKV_KTILE_FN KKernelsAvx2
#endif

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && \
    (!RESTKV_AVX2_TILES_VNNI || RESTKV_VNNI_256)
#include "kernels/cpu/avx2_tile.h"
#include "kernels/cpu/kquant_tile.h"
#define RESTKV_HAVE_KQUANT_AVX2 1
#endif

namespace restkv::kernels::cpu::packed_detail {

#if RESTKV_HAVE_KQUANT_AVX2
namespace {

// kquant_tile.h's vector traits over ymm registers: a part is a half.
struct Avx2Vec : avx2::DotOps {
  using I = __m256i;
  using F = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kMaxRows = avx2::kMaxRows;
  static constexpr int kMaskedBit4Rows = 0;  // no byte masks before AVX-512

  static I Load(const uint8_t* p) { return avx2::Load(p); }
  static void StoreI(uint8_t* p, I v) { _mm256_store_si256(reinterpret_cast<__m256i*>(p), v); }
  static I And(I a, I b) { return _mm256_and_si256(a, b); }
  static I Or(I a, I b) { return _mm256_or_si256(a, b); }
  static I OrAnd(I a, I b, I c) { return Or(a, And(b, c)); }
  static I Bytes(char v) { return _mm256_set1_epi8(v); }
  static I ShiftLeft16(I a, int n) { return _mm256_slli_epi16(a, n); }
  static I ShiftRight16(I a, int n) { return _mm256_srli_epi16(a, n); }
  static I Broadcast4(const int8_t* p) { return avx2::Broadcast4(p); }
  static I BroadcastInt(const int32_t* p) { return _mm256_set1_epi32(*p); }

  static F ZeroF() { return _mm256_setzero_ps(); }
  static F ToFloat(I a) { return _mm256_cvtepi32_ps(a); }
  static F Set1(float v) { return _mm256_set1_ps(v); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F FMAdd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F FMSub(F a, F b, F c) { return _mm256_fmsub_ps(a, b, c); }
  static F LoadU8(const uint8_t* p) {
    return _mm256_cvtepi32_ps(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static F LoadS8(const uint8_t* p) {
    return _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static F LoadHalves(const uint8_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }

  template <int R>
  static void Store(const F (&acc)[R], float* y, int64_t ldy, int part, int valid) {
    avx2::StoreHalf(acc, y, ldy, part, valid);
  }
  static void Run(const KPartTileFn* tiles, const uint8_t* panel, int64_t nsb,
                  const Q8Activations& x, int64_t row0, int num_x, float* y, int64_t ldy,
                  int valid) {
    avx2::RunHalves(tiles, panel, nsb, x, row0, num_x, y, ldy, valid);
  }
};

}  // namespace

KKernels RESTKV_KTILE_FN(GgmlType type) { return KQuantKernelsFor<Avx2Vec>(type); }
#else
KKernels RESTKV_KTILE_FN(GgmlType) { return {}; }
#endif

}  // namespace restkv::kernels::cpu::packed_detail
