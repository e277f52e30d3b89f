// The load loop: sends prepared requests on their schedule and records what
// each one saw.
//
// Open loop (a finite schedule): request i is sent at start + arrival_s[i]
// whatever the earlier requests are doing; sending never waits for a
// response. Its latencies count from that intended time. With
// max_concurrency, a request also waits for a free slot — and the wait
// counts in its latencies (a client-side queue is part of what users see).
// Closed loop (every arrival at 0 and max_concurrency > 0): a request's
// intended time is the moment its slot opened.
//
// One io_context thread runs the sender, every request and the progress
// line; the report gives the sender's lag behind schedule and the client's
// CPU use so a saturated client is visible.
//
// The transport is a RequestSender (request_sender.h): HTTP or gRPC, the
// scheduling here is the same for both.
//
// Bounded: each request has its own timeouts (applied by the sender); after
// `send_window_s` (when > 0) nothing more is sent, and the run ends when the
// requests in flight end.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/request_sender.h"
#include "bench/summary.h"

namespace restkv::bench {

struct RunOptions {
  RequestSender* sender = nullptr;  // REQUIRED; outlives RunLoad
  int64_t max_concurrency = 0;      // 0 => unlimited
  double send_window_s = 0;         // 0 => send everything
  bool progress = true;             // a live line on stderr
  std::string progress_label;
};

struct RunResult {
  std::vector<RequestRecord> records;  // one per request sent, in send order
  int64_t not_sent = 0;                // past send_window_s
  double duration_s = 0;               // start to the last completion
  double client_cpu_s = 0;             // this process's CPU time during the run
  double start_monotonic_s = 0;        // the run's start on steady_clock (CLOCK_MONOTONIC)
};

absl::StatusOr<RunResult> RunLoad(const std::vector<WorkItem>& items, const RunOptions& options);

// Fills a record's latencies from a StreamResult (exposed for tests).
RequestRecord MakeRecord(int64_t index, Clock::time_point start, Clock::time_point intended,
                         const WorkItem& item, const StreamResult& r);

}  // namespace restkv::bench
