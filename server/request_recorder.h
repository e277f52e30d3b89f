// `restkv serve --record-requests FILE`: one JSON line per finished request
// in the Mooncake trace format, so real traffic can be replayed later by
// `restkv bench --replay FILE` or any tool that reads Mooncake traces:
//
//   {"timestamp": 1234.5, "input_length": 1100, "output_length": 64,
//    "hash_ids": [0, 1, 7], ...restkv's own fields...}
//
// timestamp: ms from the start of the recording to the request's ARRIVAL
// (lines are written when requests FINISH, so they are not in timestamp
// order; readers sort). hash_ids: one per 512-token block of the prompt
// (the last may be partial); each block's hash chains the previous one, so
// two prompts share ids exactly as long as they share a prefix of whole
// blocks. Ids are small integers given in order of first appearance.
// Prompts are user data and never stored; only these hashes.
// restkv's fields: request_id (the id of the request's log line, built from
// the client's X-Request-Id when it sent one), endpoint (the HTTP route, or "grpc:Generate"), n,
// stream, temperature, top_p, top_k, max_tokens, ignore_eos, kv_policy,
// kv_budget, status (HTTP, or its equivalent for gRPC), finish (per choice,
// comma-separated), ttft_ms and e2e_ms as the server saw them.
//
// Never blocks the caller on I/O: Record() hands the entry to a writer
// thread through a bounded queue (full => the entry is dropped and
// counted). A write error (full disk, a file that cannot be opened) is
// logged once, recording stops, and the server goes on.
//
// Thread safety: Record() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "server/request_log.h"

namespace restkv::server {

inline constexpr int32_t kRecordBlockTokens = 512;

struct RecordedRequest {
  std::chrono::steady_clock::time_point arrival;
  std::string request_id;  // the response id (X-Request-Id based when given); "" => not written
  int64_t input_length = 0;
  int64_t output_length = 0;           // completion tokens of the longest choice
  std::vector<uint64_t> block_hashes;  // ChainedBlockHashes of the (first) prompt
  std::string endpoint;
  int32_t n = 1;
  bool stream = false;
  double temperature = 1, top_p = 1;
  int32_t top_k = 0;
  int32_t max_tokens = 0;
  bool ignore_eos = false;
  std::string kv_policy;
  int32_t kv_budget = 0;
  int http_status = 200;
  std::string finish;
  double ttft_ms = 0;
  double e2e_ms = 0;
};

// Chained 64-bit hashes of the 512-token blocks of `tokens` (the last block
// partial); hash i depends on blocks 0..i.
std::vector<uint64_t> ChainedBlockHashes(const std::vector<int32_t>& tokens);

class RequestRecorder {
 public:
  // Opens (truncates) `path`. When it cannot be opened, that is logged and
  // the recorder is inactive (Record() drops everything): the server runs.
  RequestRecorder(const std::string& path, RequestLogger* log, size_t max_queue = 4096);
  // Writes what is queued, then stops the writer.
  ~RequestRecorder();
  RequestRecorder(const RequestRecorder&) = delete;
  RequestRecorder& operator=(const RequestRecorder&) = delete;

  void Record(RecordedRequest entry);

  [[nodiscard]] bool active() const { return active_.load(); }
  [[nodiscard]] int64_t written() const { return written_.load(); }
  [[nodiscard]] int64_t dropped() const { return dropped_.load(); }

 private:
  void WriterLoop();
  std::string FormatLine(const RecordedRequest& r);  // writer thread: assigns ids

  const std::chrono::steady_clock::time_point start_;
  RequestLogger* log_;
  const size_t max_queue_;
  std::FILE* file_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RecordedRequest> queue_;  // guarded by mu_
  bool stopping_ = false;              // guarded by mu_
  std::atomic<bool> active_{false};
  std::atomic<int64_t> written_{0};
  std::atomic<int64_t> dropped_{0};
  std::unordered_map<uint64_t, int64_t> ids_;  // writer thread only
  std::thread writer_;
};

}  // namespace restkv::server
