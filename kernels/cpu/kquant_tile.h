// The K-quant panel tile (layout in packed_kquant.h), over a panel or over
// its unpacked form, and the unpacking, written once over a vector-traits
// struct V so that the AVX-512 VNNI path (packed_kquant_avx512.cc) and the
// AVX2 path (packed_kquant_avx2.cc) run the same loop; each of those files
// defines its V over its own intrinsics and instantiates KQuantKernelsFor.
//
// A "part" is V::kLanes consecutive rows of the 16-row panel: the 32-bit
// lanes of one V::I. AVX-512 covers the panel in one part (the whole 64-byte
// vector); AVX2 in two (its 32-byte halves, rows 0..7 and 8..15), one pass
// over the panel each, so that the accumulators of its V::kMaxRows
// activation rows stay in registers.
//
// V provides (all on whole vectors; I holds bytes / int32 lanes, F floats):
//   kLanes, kMaxRows; kMaskedBit4Rows (0: none) and, if above 0,
//     I MaskedBit4(q, plane, bit) (WithBit4 below);
//   I Load(const uint8_t*), StoreI(uint8_t*, I)   aligned, 4·kLanes bytes;
//   I And(I, I), Or(I, I), OrAnd(a, b, c) = a | (b & c), Bytes(char),
//     ShiftLeft16(I, int), ShiftRight16(I, int)  (16-bit lanes, count
//                                      constant once the callers' loops are
//                                      unrolled);
//   I Broadcast4(const int8_t*)       the 4 bytes at p in every 32-bit lane;
//   I DotAdd(I acc, I u8, I s8)       acc + Σ of each 4 u8·s8 products, and
//     DotSum's other members (dot_sum.h: kDirectDot, the pair sums);
//   I Zero(), I BroadcastInt(const int32_t*)  (from memory: no ALU operation);
//   F ZeroF(), ToFloat(I), Set1(float), Mul(F, F), FMAdd(a, b, c) = a·b + c,
//     FMSub(a, b, c) = a·b − c;
//   F LoadU8(p), LoadS8(p), LoadHalves(p)   kLanes u8 / s8 / fp16 as float;
//   Store<R>(acc, y, ldy, part, valid)       the part's rows below `valid`;
//   Run(tiles, panel, nsb, x, row0, num_x, y, ldy, valid): every part the
//     valid rows reach, all num_x activation rows, tiles[R − 1] (a
//     KPartTileFn[kMaxRows]) taking R of them at a time.
// Included only by translation units compiled for V's instruction set.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "kernels/cpu/dot_sum.h"
#include "kernels/cpu/packed_kquant.h"
#include "kernels/cpu/panel_prefetch.h"

namespace restkv::kernels::cpu::packed_detail {

// Rows [V::kLanes·part, +V::kLanes) of the panel against activation rows
// [row0, row0 + R): y[r · ldy + j] for those rows j below `valid`.
using KPartTileFn = void (*)(const uint8_t* panel, int64_t nsb, const Q8Activations& x,
                             int64_t row0, float* y, int64_t ldy, int part, int valid);

// v shifted so that bit `from` of every byte lands on bit 4 (its neighbours
// moving along). The 16-bit shifts carry bits across bytes, but only into
// bits that the callers then mask off.
template <typename V>
typename V::I ToBit4(typename V::I v, int from) {
  return from < 4 ? V::ShiftLeft16(v, 4 - from) : from > 4 ? V::ShiftRight16(v, from - 4) : v;
}

// q (bit 4 of every byte clear) with bit 4 set where bit `bit` of the same
// byte of `plane` is: Q5_K's fifth bit. A shift into place, And, Or; or, in
// tiles of at most V::kMaskedBit4Rows activation rows, V::MaskedBit4. On
// AVX-512 (a byte test into a mask, a masked add) that was measured ~1 %
// faster than the shifts for one row and 3–7 % slower for 4 and 8 rows.
template <typename V, int R>
typename V::I WithBit4(typename V::I q, typename V::I plane, int bit) {
  if constexpr (R <= V::kMaskedBit4Rows) {
    return V::MaskedBit4(q, plane, bit);
  } else {
    return V::OrAnd(q, ToBit4<V>(plane, bit), V::Bytes(0x10));
  }
}

// The quants of one sub-block (part `lane0 / kLanes` of it) at q, as
// unsigned bytes: Quants(u) gives the vectors of step u = 0..3, low-nibble
// elements first (4u + i, then 16 + 4u + i). R is the caller's activation
// rows (WithBit4's choice).
template <typename V, GgmlType T, int R>
class SubBlockQuants {
 public:
  using I = typename V::I;
  explicit SubBlockQuants(const uint8_t* q) : q_(q) {
    if constexpr (T == GgmlType::kQ5_K) h0_ = V::Load(q + 256);
    if constexpr (T == GgmlType::kQ6_K) {
      h0_ = V::Load(q + 256);
      h1_ = V::Load(q + 320);
    }
  }

  void Quants(int u, I& lo, I& hi) const {
    const I nibble = V::Bytes(0x0f);
    const I raw = V::Load(q_ + u * 64);
    lo = V::And(raw, nibble);
    hi = V::And(V::ShiftRight16(raw, 4), nibble);
    if constexpr (T == GgmlType::kQ5_K) {
      // Bit u (low nibbles) / 4 + u (high nibbles) of the plane.
      lo = WithBit4<V, R>(lo, h0_, u);
      hi = WithBit4<V, R>(hi, h0_, 4 + u);
    } else if constexpr (T == GgmlType::kQ6_K) {
      const I top = V::Bytes(0x30);
      lo = V::OrAnd(lo, ToBit4<V>(h0_, 2 * u), top);
      hi = V::OrAnd(hi, ToBit4<V>(h1_, 2 * u), top);
    }
  }

 private:
  const uint8_t* q_;
  I h0_{}, h1_{};
};

// SubBlockQuants' vectors read from an unpacked panel's sub-block at q.
template <typename V>
struct UnpackedQuants {
  using I = typename V::I;
  explicit UnpackedQuants(const uint8_t* q) : q_(q) {}
  void Quants(int u, I& lo, I& hi) const {
    lo = V::Load(q_ + 2 * u * 64);
    hi = V::Load(q_ + (2 * u + 1) * 64);
  }
  const uint8_t* q_;
};

// kUnpacked: `panel` is an unpacked panel (packed_kquant.h), whose quants
// are read as they are; else the panel itself.
template <typename V, GgmlType T, bool kUnpacked, int R>
void KQuantTile(const uint8_t* panel, int64_t nsb, const Q8Activations& x, int64_t row0, float* y,
                int64_t ldy, int part, int valid) {
  using I = typename V::I;
  using F = typename V::F;
  constexpr int64_t kBlock = kUnpacked ? kKUnpackedBlockBytes : KPanelBlockBytes(T);
  constexpr int64_t kSub = kUnpacked ? kKUnpackedSubBytes : KSubBytes(T);
  constexpr int64_t kPrefetchLines = (kBlock / 64 + 7) / 8;
  // First panel row of this part; a constant 0 where one part is the panel.
  constexpr int kParts = 16 / V::kLanes;
  const int64_t lane0 = kParts == 1 ? 0 : V::kLanes * part;
  F acc[R];
  const Q8PanelBlock* xb[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = V::ZeroF();
    xb[r] = x.panel_blocks(row0 + r);
  }
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* pb = panel + sb * kBlock;
    const uint8_t* scales = pb + 8 * kSub;
    const F d = V::LoadHalves(scales + kKDOffset + 2 * lane0);
    F dmin = V::ZeroF();
    if constexpr (T != GgmlType::kQ6_K) dmin = V::LoadHalves(scales + kKDminOffset + 2 * lane0);
    for (int s = 0; s < 8; ++s) {
      const int64_t b = sb * 8 + s;
      const uint8_t* q = pb + s * kSub + 4 * lane0;
      // An eighth of the super-block's lines per sub-block (its quants and
      // scales are one stream). An unpacked panel is in cache already.
      if constexpr (!kUnpacked)
        PrefetchPanelAhead<kPrefetchLines * 64>(pb + s * kPrefetchLines * 64);
      const std::conditional_t<kUnpacked, UnpackedQuants<V>, SubBlockQuants<V, T, R>> quants(q);
      if constexpr (T == GgmlType::kQ6_K) {
        // Per 16-group: t = d·sc·(Σqx − 32Σx); acc += (t_lo + t_hi)·dx. Each
        // group's dot starts from −32Σx.
        DotSum<V, 63> lsum[R], hsum[R];
        for (int r = 0; r < R; ++r) {
          lsum[r] = DotSum<V, 63>(V::BroadcastInt(&xb[r][b].q6_k_offset[0]));
          hsum[r] = DotSum<V, 63>(V::BroadcastInt(&xb[r][b].q6_k_offset[1]));
        }
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) {
          I lo, hi;
          quants.Quants(u, lo, hi);
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) {
            lsum[r].Add(lo, V::Broadcast4(xb[r][b].qs + 4 * u));
            hsum[r].Add(hi, V::Broadcast4(xb[r][b].qs + 16 + 4 * u));
          }
        }
        const F sl = V::Mul(V::LoadS8(scales + 32 * s + lane0), d);
        const F sh = V::Mul(V::LoadS8(scales + 32 * s + 16 + lane0), d);
        for (int r = 0; r < R; ++r) {
          const F tl = V::ToFloat(lsum[r].Sum());
          const F th = V::ToFloat(hsum[r].Sum());
          const F t = V::FMAdd(tl, sl, V::Mul(th, sh));
          acc[r] = V::FMAdd(t, V::Set1(xb[r][b].d), acc[r]);
        }
      } else {
        // Per sub-block: t = d·sc·Σqx − dmin·mn·Σx; acc += t·dx.
        DotSum<V, T == GgmlType::kQ5_K ? 31 : 15> isum[R];
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) {
          I lo, hi;
          quants.Quants(u, lo, hi);
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) {
            isum[r].Add(lo, V::Broadcast4(xb[r][b].qs + 4 * u));
            isum[r].Add(hi, V::Broadcast4(xb[r][b].qs + 16 + 4 * u));
          }
        }
        const F sc = V::Mul(V::LoadU8(scales + 16 * s + lane0), d);
        const F mn = V::Mul(V::LoadU8(scales + kKMinsOffset + 16 * s + lane0), dmin);
        for (int r = 0; r < R; ++r) {
          const F t = V::FMSub(sc, V::ToFloat(isum[r].Sum()), V::Mul(mn, V::Set1(xb[r][b].sum)));
          acc[r] = V::FMAdd(t, V::Set1(xb[r][b].d), acc[r]);
        }
      }
    }
  }
  V::template Store<R>(acc, y, ldy, part, valid);
}

// The unpacked form of a panel (packed_kquant.h): every part's quants through
// SubBlockQuants, the scales copied.
template <typename V, GgmlType T>
void KQuantUnpack(const uint8_t* panel, int64_t nsb, uint8_t* out) {
  using I = typename V::I;
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* pb = panel + sb * KPanelBlockBytes(T);
    uint8_t* ob = out + sb * kKUnpackedBlockBytes;
    for (int s = 0; s < 8; ++s) {
      for (int part = 0; part < 16 / V::kLanes; ++part) {
        const int64_t lane0 = V::kLanes * part;
        const SubBlockQuants<V, T, V::kMaxRows> packed(pb + s * KSubBytes(T) + 4 * lane0);
        uint8_t* o = ob + s * kKUnpackedSubBytes + 4 * lane0;
        for (int u = 0; u < 4; ++u) {
          I lo, hi;
          packed.Quants(u, lo, hi);
          V::StoreI(o + 2 * u * 64, lo);
          V::StoreI(o + (2 * u + 1) * 64, hi);
        }
      }
    }
    std::memcpy(ob + 8 * kKUnpackedSubBytes, pb + KScalesOffset(T), 320);
  }
}

template <typename V, GgmlType T, bool kUnpacked, int... R>
constexpr auto KQuantTiles(std::integer_sequence<int, R...>) {
  return std::array<KPartTileFn, sizeof...(R)>{KQuantTile<V, T, kUnpacked, R + 1>...};
}

// KTileFn of type T: every part and activation row through V::Run.
template <typename V, GgmlType T, bool kUnpacked>
void KQuantRun(const uint8_t* panel, int64_t nsb, const Q8Activations& x, int64_t row0, int num_x,
               float* y, int64_t ldy, int valid) {
  static constexpr std::array<KPartTileFn, V::kMaxRows> kTiles =
      KQuantTiles<V, T, kUnpacked>(std::make_integer_sequence<int, V::kMaxRows>{});
  V::Run(kTiles.data(), panel, nsb, x, row0, num_x, y, ldy, valid);
}

template <typename V, GgmlType T>
KKernels KQuantKernels() {
  return {KQuantRun<V, T, false>, KQuantUnpack<V, T>, KQuantRun<V, T, true>};
}

// The kernels of `type` on V's path (KKernelsFor's table); none if not a
// K-quant.
template <typename V>
KKernels KQuantKernelsFor(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_K:
      return KQuantKernels<V, GgmlType::kQ4_K>();
    case GgmlType::kQ5_K:
      return KQuantKernels<V, GgmlType::kQ5_K>();
    case GgmlType::kQ6_K:
      return KQuantKernels<V, GgmlType::kQ6_K>();
    default:
      return {};
  }
}

}  // namespace restkv::kernels::cpu::packed_detail
