// Step-time budget defaults per device, and the prior step prices the
// engine starts its fitted cost model from (scheduler/step_cost_model.h).
//
// NOTE(restkv): the default bound is the inter-token time we promise while
// long prompts prefill. Every decoding request gets one token per step, so
// a step bound of B ms is an inter-token bound of B ms (plus sampling and
// streaming, which are small).
//   cpu  150 ms: the middle of the 100-200 ms an interactive stream reads as
//        fluent, and about 10x a decode step of a small model on 2 cores, so
//        about 90 % of a step that carries decodes can go to prefill.
//   cuda 100 ms: a GPU's decode step is a few ms and a 2048-token prefill
//        chunk of an 8B model well under 100 ms, so the token budget binds
//        first as in vLLM; the time bound takes over at long contexts, where
//        attention makes each layer slice dearer.
// A step without decodes may take kLonePrefillStepFactor times as long:
// nobody is waiting for a token, and larger steps mean fewer forward calls;
// it stays bounded because a prompt that arrives meanwhile waits for the
// step to end before it is scheduled.
#pragma once

#include <string_view>

#include "engine/model/model_config.h"
#include "scheduler/step_cost.h"

namespace restkv::engine {

inline constexpr double kLonePrefillStepFactor = 4.0;

// The default --max-step-ms for a backend by name ("cpu", "cuda").
[[nodiscard]] double DefaultMaxStepMs(std::string_view backend_name);

// First-guess prices for `config` on the backend, from its shapes and a
// rough device speed; the engine refits them to the measured step times
// within a few dozen steps, so they only need the right order of magnitude.
[[nodiscard]] scheduler::StepCost PriorStepCost(std::string_view backend_name,
                                                const ModelConfig& config);

}  // namespace restkv::engine
