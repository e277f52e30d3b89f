// The K-quant panel tile (layout in packed_kquant.h), written once over a
// vector-traits struct V so that the AVX-512 VNNI path
// (packed_kquant_avx512.cc) and the AVX2 path (packed_kquant_avx2.cc) run the
// same loop; each of those files defines its V over its own intrinsics and
// instantiates KQuantTileFor.
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
//   I Load(const uint8_t*)            aligned, 4·kLanes bytes;
//   I And(I, I), Or(I, I), OrAnd(a, b, c) = a | (b & c), Bytes(char),
//     ShiftLeft16(I, int),
//     ShiftRight16(I, int)            (16-bit lanes, count constant once the
//                                      callers' loops are unrolled);
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

template <typename V, GgmlType T, int R>
void KQuantTile(const uint8_t* panel, int64_t nsb, const Q8Activations& x, int64_t row0, float* y,
                int64_t ldy, int part, int valid) {
  using I = typename V::I;
  using F = typename V::F;
  constexpr int64_t kBlock = KPanelBlockBytes(T), kSub = KSubBytes(T);
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
  const I nibble = V::Bytes(0x0f);
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* pb = panel + sb * kBlock;
    const uint8_t* scales = pb + KScalesOffset(T);
    const F d = V::LoadHalves(scales + kKDOffset + 2 * lane0);
    F dmin = V::ZeroF();
    if constexpr (T != GgmlType::kQ6_K) dmin = V::LoadHalves(scales + kKDminOffset + 2 * lane0);
    for (int s = 0; s < 8; ++s) {
      const int64_t b = sb * 8 + s;
      const uint8_t* q = pb + s * kSub + 4 * lane0;
      // An eighth of the super-block's lines per sub-block (its quants and
      // scales are one stream).
      PrefetchPanelAhead<kPrefetchLines * 64>(pb + s * kPrefetchLines * 64);
      if constexpr (T == GgmlType::kQ6_K) {
        // Per 16-group: t = d·sc·(Σqx − 32Σx); acc += (t_lo + t_hi)·dx. Each
        // group's dot starts from −32Σx.
        const I top = V::Bytes(0x30);
        const I h0 = V::Load(q + 256), h1 = V::Load(q + 320);
        DotSum<V, 63> lsum[R], hsum[R];
        for (int r = 0; r < R; ++r) {
          lsum[r] = DotSum<V, 63>(V::BroadcastInt(&xb[r][b].q6_k_offset[0]));
          hsum[r] = DotSum<V, 63>(V::BroadcastInt(&xb[r][b].q6_k_offset[1]));
        }
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) {
          const I raw = V::Load(q + u * 64);
          const I lo = V::OrAnd(V::And(raw, nibble), ToBit4<V>(h0, 2 * u), top);
          const I hi = V::OrAnd(V::And(V::ShiftRight16(raw, 4), nibble), ToBit4<V>(h1, 2 * u), top);
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
        I high = V::Zero();
        if constexpr (T == GgmlType::kQ5_K) high = V::Load(q + 256);
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) {
          const I raw = V::Load(q + u * 64);
          I lo = V::And(raw, nibble);
          I hi = V::And(V::ShiftRight16(raw, 4), nibble);
          if constexpr (T == GgmlType::kQ5_K) {
            // Bit u (low nibbles) / 4 + u (high nibbles) of the plane.
            lo = WithBit4<V, R>(lo, high, u);
            hi = WithBit4<V, R>(hi, high, 4 + u);
          }
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

template <typename V, GgmlType T, int... R>
constexpr auto KQuantTiles(std::integer_sequence<int, R...>) {
  return std::array<KPartTileFn, sizeof...(R)>{KQuantTile<V, T, R + 1>...};
}

// KTileFn of type T: every part and activation row through V::Run.
template <typename V, GgmlType T>
void KQuantRun(const uint8_t* panel, int64_t nsb, const Q8Activations& x, int64_t row0, int num_x,
               float* y, int64_t ldy, int valid) {
  static constexpr std::array<KPartTileFn, V::kMaxRows> kTiles =
      KQuantTiles<V, T>(std::make_integer_sequence<int, V::kMaxRows>{});
  V::Run(kTiles.data(), panel, nsb, x, row0, num_x, y, ldy, valid);
}

// The tile of `type` on V's path (KTileFor's table); nullptr if not a K-quant.
template <typename V>
KTileFn KQuantTileFor(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_K:
      return KQuantRun<V, GgmlType::kQ4_K>;
    case GgmlType::kQ5_K:
      return KQuantRun<V, GgmlType::kQ5_K>;
    case GgmlType::kQ6_K:
      return KQuantRun<V, GgmlType::kQ6_K>;
    default:
      return nullptr;
  }
}

}  // namespace restkv::kernels::cpu::packed_detail
