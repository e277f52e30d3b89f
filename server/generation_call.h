// GenerationCall: one /v1/completions or /v1/chat/completions request in
// flight — its n engine requests, their events, and the HTTP answer.
//
//   Start (strand) ── Engine::Submit × choices ──> engine thread
//        engine thread: CallSink::OnTokens / OnFinish ──post──> strand
//        strand: stream a chunk, or accumulate; when every choice has
//                finished: the JSON response, or usage chunk + [DONE]
//
// All state lives on the exchange's strand; the sinks only post copies of
// the engine's events there, so nothing here blocks the engine thread.
//
// Endings other than success:
// - Submit fails for a choice (queue full → 429, prompt never fits the KV
//   pool → 400, shutting down → 503): the choices already submitted are
//   cancelled and the error is the response.
// - The client disconnects: every unfinished choice is cancelled in the
//   engine, which frees its pages at its next step; nothing more is written.
// - The per-request timeout fires: unfinished choices are cancelled; the
//   answer is 504, or, mid-stream, an error event before [DONE].
// - A choice fails in the engine (FinishReason::kError → 500) or is
//   cancelled by engine shutdown (→ 503): a non-streamed request answers
//   with that error (the other choices are cancelled); a streamed one sends
//   an error event for it ({"error": {...}}, as vLLM does) and goes on.
// Every call logs one line (request_log.h), feeds ServerMetrics per choice
// and, when recording, hands a RecordedRequest to the recorder (which only
// queues it; request_recorder.h).
//
// Lifetime: shared by the sinks the engine holds and by pending strand
// work; `active_calls` counts calls that have not yet finished all their
// engine requests (graceful shutdown waits for it to reach 0).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "boost/asio/steady_timer.hpp"
#include "engine/engine.h"
#include "server/generation_plan.h"
#include "server/http_exchange.h"
#include "server/metrics.h"
#include "server/request_log.h"
#include "server/request_recorder.h"
#include "server/tool_call_stream.h"

namespace restkv::server {

struct CallContext {
  engine::Engine* engine = nullptr;
  ServerMetrics* metrics = nullptr;
  RequestLogger* log = nullptr;
  std::chrono::milliseconds timeout{0};  // 0 => no limit
  std::atomic<int>* active_calls = nullptr;
  RequestRecorder* recorder = nullptr;  // --record-requests; nullptr => off
};

class GenerationCall : public std::enable_shared_from_this<GenerationCall> {
 public:
  // Submits the plan's choices and answers on `exchange`.
  // REQUIRES: called on exchange->executor(); every CallContext pointer
  // outlives the call.
  static void Start(std::shared_ptr<HttpExchange> exchange, const CallContext& context,
                    GenerationPlan plan);

  GenerationCall(std::shared_ptr<HttpExchange> exchange, const CallContext& context,
                 GenerationPlan plan);

  // Strand-side handlers of the engine's events (called by the sink's posts).
  void OnPromptLogprobs(size_t choice, const std::vector<engine::LogprobResult>& logprobs);
  void OnTokens(size_t choice, const engine::TokenDelta& delta);
  void OnFinish(size_t choice, const engine::RequestSummary& summary);

 private:
  struct ChoiceState {
    engine::RequestHandle handle = 0;
    bool submitted = false;
    bool finished = false;
    std::string text;
    Json logprobs;  // completions: the legacy object; chat: the content array
    int64_t text_offset = 0;
    int64_t tokens_out = 0;  // so far, for continuous usage stats
    engine::RequestSummary summary;
    // Chat with tools, streamed: content and tool-call deltas as the text
    // arrives.
    std::optional<ToolCallStream> tool_stream;
  };
  enum class Ending { kNormal, kDisconnected, kTimedOut, kFailed };

  void Submit();
  void BeginStream();
  // Completions with echo and logprobs: the prompt's logprobs come from the
  // engine, so a streamed echo chunk waits for them.
  [[nodiscard]] bool WantsPromptLogprobs() const;
  void SendEchoChunk(size_t choice);
  void CancelUnfinished();
  void OnDisconnect();
  void OnTimeout();
  void SendChunk(size_t choice, const std::string& text, Json logprobs);
  // Streamed chat with tools: sends what was held back and returns the
  // finish reason to report.
  const char* FlushToolCalls(size_t choice, const char* finish_reason);
  // The id of a choice's k-th tool call (the same when streamed and parsed).
  [[nodiscard]] std::string ToolCallIdPrefix(int32_t index) const;
  void SendToolCallDeltas(size_t choice, std::vector<ToolCallDelta> deltas, Json logprobs);
  void SendFinishChunk(size_t choice, const char* finish_reason);
  void SendErrorEvent(const absl::Status& status);
  // Writes one choice's chunk, with the usage so far when the request asked
  // for continuous usage stats.
  void WriteChoiceChunk(size_t choice, Json chunk);
  void MaybeComplete();
  void Record(const RequestLogEntry& log);
  [[nodiscard]] const engine::Tokenizer& tokenizer() const;

  std::shared_ptr<HttpExchange> exchange_;
  CallContext ctx_;
  GenerationPlan plan_;
  std::vector<ChoiceState> choices_;
  boost::asio::steady_timer timer_;
  std::chrono::steady_clock::time_point started_;
  Ending ending_ = Ending::kNormal;
  absl::Status error_;  // the first failure (non-streamed answer / log)
  size_t num_unfinished_ = 0;
  bool completed_ = false;
};

}  // namespace restkv::server
