// FillWithRandomKv: puts an empty sequence in the state a prefill of
// `num_tokens` tokens under `policy` leaves it in — layer l holds
// KeptTokensForLayer(policy, l, L, N) slots, in the pages a real prefill
// would hold after eviction — with seeded random K/V instead of computed
// ones, without running the model.
//
// For capacity benchmarks (tools/bench_cuda's concurrency section): decode
// over N such sequences reads the same number of pages in the same layout as
// after real prefills, so step time and how many requests fit are measured
// at 128k tokens in seconds instead of one long prefill per request. The
// values are not a model's, so the tokens decoded from them mean nothing.
// Head-wise (AdaKV) budgets are filled at their padded bound (every head
// full), the most the pages can hold.
//
// K/V go through Backend::StoreKv, so they are rounded to the page dtype as
// computed ones are, on any backend: one chunk of random rows is uploaded
// once and stored to every slot range in turn.
//
// Errors: ResourceExhausted (the sequence keeps what it had) when the pool
// cannot hold the footprint; InvalidArgument for a non-empty sequence or a
// negative length.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "engine/eviction/policy_config.h"
#include "engine/kv/sequence_kv.h"
#include "kernels/backend.h"

namespace restkv::engine {

absl::Status FillWithRandomKv(kernels::Backend& backend, SequenceKv& kv,
                              const KvPolicyConfig& policy, int32_t num_tokens, uint32_t seed);

}  // namespace restkv::engine
