// DotSum: a sum of unsigned × signed byte dots into the 32-bit lanes of a
// vector, for the panel tiles (packed_gemm_avx2.cc, kquant_tile.h).
//
// With VNNI a dot is one vpdpbusd into the int32 lanes. Without it (AVX2),
// a dot is pmaddubsw, the u8·s8 products summed in pairs into int16 lanes,
// then pmaddwd by 1 into int32 and an add. DotSum adds the int16 pair sums
// of several dots first and widens them once, saving a pmaddwd and an add
// per dot but the last. The result is exact either way: with weights of at
// most kMaxWeight and activations of at most 127 in magnitude (Q8_1), a
// pair sum is at most 2·kMaxWeight·127, and kPairDots of them stay within
// int16. (Q8_0 panels, weights + 128, would saturate pmaddubsw itself; the
// tiles offer them only with VNNI.)
//
// The callers' loops over dots must be unrolled (#pragma GCC unroll) so that
// the count of pending dots is a constant: GCC 12 leaves them rolled
// otherwise, and the counting then costs more than the pmaddwd it saves.
//
// V provides kDirectDot; I Zero(); I DotAdd(I acc, I u8, I s8); and, when
// kDirectDot is false, I PairDot(I u8, I s8) (int16 pair sums),
// I AddPairs(I, I) (int16 lanes) and I WidenAdd(I acc, I pairs).
// Included only by translation units compiled for V's instruction set.
#pragma once

namespace restkv::kernels::cpu::packed_detail {

template <typename V, int kMaxWeight>
class DotSum {
 public:
  using I = typename V::I;

  DotSum() = default;
  // Dots added to `init` (int32 lanes).
  explicit DotSum(I init) : sum_(init) {}

  void Add(I u, I s) {
    if constexpr (V::kDirectDot) {
      sum_ = V::DotAdd(sum_, u, s);
    } else {
      const I p = V::PairDot(u, s);
      pairs_ = pending_ == 0 ? p : V::AddPairs(pairs_, p);
      if (++pending_ == kPairDots) Widen();
    }
  }

  // The int32 sums of every dot added so far.
  I Sum() {
    if constexpr (!V::kDirectDot) {
      if (pending_ > 0) Widen();
    }
    return sum_;
  }

 private:
  static constexpr int kPairDots = 32767 / (2 * kMaxWeight * 127);
  static_assert(V::kDirectDot || kPairDots >= 1, "pair sums of these weights overflow int16");

  void Widen() {
    sum_ = V::WidenAdd(sum_, pairs_);
    pending_ = 0;
  }

  I sum_ = V::Zero();
  I pairs_{};
  int pending_ = 0;
};

}  // namespace restkv::kernels::cpu::packed_detail
