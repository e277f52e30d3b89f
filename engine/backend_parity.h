// CompareBackends: the same model file on two backends (the CPU reference
// and a device), compared the way a user would notice a difference — the
// tokens greedy decoding picks and the tokens eviction keeps.
//
//   logits  the test model is teacher-forced along the reference's greedy
//           continuation (prefill + decode_steps - 1 decode steps), so every
//           step compares the same context: top-1 agreement, the largest
//           absolute logit difference, and "clear" mismatches — a different
//           top-1 where the reference's top-two gap exceeds twice that
//           step's largest difference, i.e. not a near tie that rounding
//           may flip. Random-weights models have many near ties, so
//           agreement alone is not the parity criterion; clear mismatches
//           are (0 on a correct backend).
//   greedy  the test model decoding on its own: how many leading tokens
//           equal the reference's (the first near tie ends it).
//   kept    a longer prompt prefilled under each evicting policy with the
//           kept positions recorded (EvictionReport::kept): the mean Jaccard
//           of the two backends' sets over (layer, KV head).
//
// Used by tools/bench_cuda's parity section (CPU against CUDA on the
// smollm2-135m shape with random weights); its own test compares two CPU
// backends. Both models must have the same config; pools are made on each
// model's backend in its KV dtype.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model.h"

namespace restkv::engine {

struct ParityOptions {
  int32_t prompt_tokens = 256;
  int32_t decode_steps = 32;
  int32_t evict_prompt_tokens = 2048;
  int32_t kv_budget = 256;
  std::vector<std::string> policies = {"restkv", "snapkv"};
  uint32_t seed = 5;  // of the random prompts
};

struct KeptParity {
  std::string policy;
  double mean_jaccard = 0;
};

struct ParityReport {
  int32_t steps = 0;  // teacher-forced steps compared
  int32_t top1_agree = 0;
  int32_t clear_mismatches = 0;
  double max_abs_logit_error = 0;
  double max_abs_logit = 0;      // of the reference, for scale
  int32_t greedy_identical = 0;  // of decode_steps
  std::vector<KeptParity> kept;
};

absl::StatusOr<ParityReport> CompareBackends(Model& reference, Model& test,
                                             const ParityOptions& options);

}  // namespace restkv::engine
