// Seeded random keys and values for needles, in RULER's shapes:
// keys "adjective-noun" (RULER draws them with `wonderwords`; a built-in list
// stands in), values 7-digit numbers or UUIDs.
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace restkv::eval {

using Rng = std::mt19937_64;

// Uniform integer in [lo, hi] that does not depend on the standard library's
// distribution implementation (so cases are identical on every platform).
int64_t UniformInt(Rng& rng, int64_t lo, int64_t hi);

std::string RandomKey(Rng& rng);       // e.g. "lunar-harbor"
std::string RandomNumber7(Rng& rng);   // "1000000".."9999999"
std::string RandomUuid(Rng& rng);      // lowercase 8-4-4-4-12 hex, version 4
std::string RandomVariable(Rng& rng);  // 5 uppercase letters (RULER vt)

// Seed for one case from the user's seed and the case coordinates.
uint64_t CaseSeed(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0);

}  // namespace restkv::eval
