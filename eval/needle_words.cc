#include "eval/needle_words.h"

#include <array>

#include "absl/strings/str_format.h"

namespace restkv::eval {
namespace {

constexpr std::array<const char*, 48> kAdjectives = {
    "lunar",  "silent", "amber", "brisk",   "crimson", "dusty",   "eager",  "frozen",
    "gentle", "hollow", "ivory", "jagged",  "kind",    "lively",  "misty",  "noble",
    "olive",  "proud",  "quiet", "rusty",   "sandy",   "tidy",    "upper",  "vivid",
    "wild",   "young",  "zesty", "bitter",  "calm",    "distant", "early",  "fancy",
    "golden", "humble", "icy",   "jolly",   "kindred", "loyal",   "mellow", "narrow",
    "odd",    "plain",  "rapid", "scarlet", "tender",  "urban",   "velvet", "wooden"};
constexpr std::array<const char*, 48> kNouns = {
    "harbor",  "meadow", "lantern", "falcon", "orchard", "canyon",  "violin",  "glacier",
    "pepper",  "castle", "ribbon",  "tunnel", "walnut",  "compass", "island",  "kettle",
    "marble",  "needle", "oyster",  "parrot", "quarry",  "saddle",  "thistle", "umbrella",
    "valley",  "window", "anchor",  "basket", "cactus",  "dragon",  "engine",  "feather",
    "garden",  "hammer", "jacket",  "ladder", "mirror",  "nectar",  "pillow",  "rocket",
    "sparrow", "teapot", "village", "wagon",  "yogurt",  "zipper",  "bridge",  "candle"};

}  // namespace

int64_t UniformInt(Rng& rng, int64_t lo, int64_t hi) {
  const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
  // Rejection sampling for an unbiased draw.
  const uint64_t limit = span == 0 ? 0 : (~uint64_t{0} - span + 1) % span;
  uint64_t x;
  do {
    x = rng();
  } while (span != 0 && x < limit);
  return lo + static_cast<int64_t>(span == 0 ? x : x % span);
}

std::string RandomKey(Rng& rng) {
  const char* a = kAdjectives[UniformInt(rng, 0, kAdjectives.size() - 1)];
  const char* n = kNouns[UniformInt(rng, 0, kNouns.size() - 1)];
  return std::string(a) + "-" + n;
}

std::string RandomNumber7(Rng& rng) { return std::to_string(UniformInt(rng, 1000000, 9999999)); }

std::string RandomUuid(Rng& rng) {
  const uint64_t hi = rng(), lo = rng();
  return absl::StrFormat("%08x-%04x-4%03x-%04x-%012x", hi >> 32, (hi >> 16) & 0xffff, hi & 0xfff,
                         0x8000 | ((lo >> 48) & 0x3fff), lo & 0xffffffffffffULL);
}

std::string RandomVariable(Rng& rng) {
  std::string s(5, 'A');
  for (char& c : s) c = static_cast<char>('A' + UniformInt(rng, 0, 25));
  return s;
}

uint64_t CaseSeed(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  // splitmix64 over the coordinates.
  uint64_t x = seed;
  for (uint64_t v : {a, b, c}) {
    x += 0x9e3779b97f4a7c15ULL + v;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
  }
  return x;
}

}  // namespace restkv::eval
