// What --record-requests keeps of a planned generation before it runs: the
// prompt's length and chained block hashes (never its text), the sampling
// parameters and the KV policy. Each frontend (HTTP GenerationCall, gRPC
// Generate) adds the outcome — tokens out, status, finish, latencies — when
// the call ends.
#pragma once

#include <string>

#include "server/generation_plan.h"
#include "server/request_recorder.h"

namespace restkv::server {

// Fields from the plan's first prompt and first choice (absent ones stay at
// their defaults); n = 1, stream = plan.stream.
RecordedRequest PlannedRecord(const GenerationPlan& plan, std::string endpoint);

}  // namespace restkv::server
