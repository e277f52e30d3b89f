#include "bench/grpc_client.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "boost/asio/post.hpp"
#include "boost/asio/redirect_error.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/this_coro.hpp"
#include "boost/asio/use_awaitable.hpp"

namespace restkv::bench {
namespace {

namespace net = boost::asio;
namespace pb = restkv::v1;

std::chrono::system_clock::time_point DeadlineIn(std::chrono::milliseconds d) {
  return std::chrono::system_clock::now() + d;
}

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat(what, " failed: ", GrpcCodeName(s.error_code()), ": ", s.error_message()));
}

// One Generate call. Shared by the Send coroutine (which waits for it) and
// gRPC (from StartCall to OnDone, through `self_`, handed to the io thread
// by OnDone's post, so it is always destroyed there). The reactions run on
// gRPC's threads, one at a time per call; they write only the call's own
// fields, which the coroutine reads after OnDone has posted `Finished` to
// its executor (the post orders the accesses). `last_event_` is the one
// field read while the call runs (by the stall watchdog), hence atomic.
class GenerateCall final : public grpc::ClientReadReactor<pb::GenerateResponse> {
 public:
  explicit GenerateCall(net::any_io_executor ex) : executor_(std::move(ex)), wake_(executor_) {}

  void Start(const GrpcTarget& target, pb::GenerateRequest request, std::chrono::milliseconds total,
             std::shared_ptr<GenerateCall> self) {
    self_ = std::move(self);
    request_ = std::move(request);
    target.Prepare(&context_);
    context_.set_deadline(DeadlineIn(total));
    sent = Clock::now();
    last_event_ = sent.time_since_epoch().count();
    target.stub().async()->Generate(&context_, &request_, this);
    StartRead(&message_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream is over; OnDone follows
    const Clock::time_point now = Clock::now();
    last_event_ = now.time_since_epoch().count();
    if (message_.token_ids_size() > 0 || !message_.text().empty()) chunk_times.push_back(now);
    streamed_tokens += message_.token_ids_size();
    if (message_.finished()) {
      finished = true;
      finished_at = now;
      finish_reason = message_.finish_reason();
      if (message_.has_usage()) {
        usage_prompt = message_.usage().prompt_tokens();
        usage_completion = message_.usage().completion_tokens();
      }
    }
    StartRead(&message_);
  }

  void OnDone(const grpc::Status& s) override {
    done = Clock::now();
    status = s;
    // The last thing this reaction does: hand gRPC's reference over to the
    // io thread. No reference may stay on this thread: the last one must be
    // dropped on the io thread, while the io_context (which `wake_` and the
    // executor point into) still exists — RunLoad destroys it as soon as the
    // coroutines are done. Nothing here touches `this` after the post.
    net::post(executor_, [self = std::move(self_)] {
      self->ended = true;
      self->wake_.cancel();
    });
  }

  // io thread: cancels the call; `ended` follows soon.
  void Cancel() { context_.TryCancel(); }
  Clock::time_point last_event() const {
    return Clock::time_point(Clock::duration(last_event_.load()));
  }

  net::steady_timer& wake() { return wake_; }

  // Results; see the class comment for who touches them when.
  Clock::time_point sent, done, finished_at;
  std::vector<Clock::time_point> chunk_times;
  int64_t streamed_tokens = 0;
  bool finished = false;
  std::string finish_reason;
  int64_t usage_prompt = -1, usage_completion = -1;
  grpc::Status status;
  bool ended = false;  // io thread only

 private:
  net::any_io_executor executor_;
  net::steady_timer wake_;  // io thread only
  grpc::ClientContext context_;
  pb::GenerateRequest request_;
  pb::GenerateResponse message_;
  std::atomic<Clock::rep> last_event_{0};
  std::shared_ptr<GenerateCall> self_;
};

}  // namespace

std::string GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return absl::StrCat("CODE_", static_cast<int>(code));
  }
}

std::string GrpcErrorKind(const grpc::Status& status, bool stalled, bool timed_out) {
  if (status.ok()) return "";  // it ended well even if the watchdog had just fired
  if (stalled) return "stall";
  if (timed_out || status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) return "timeout";
  return "grpc_" + GrpcCodeName(status.error_code());
}

absl::StatusOr<std::shared_ptr<GrpcTarget>> GrpcTarget::Create(const std::string& address,
                                                               std::string api_key) {
  std::string addr(absl::StripPrefix(address, "grpc://"));
  const size_t colon = addr.rfind(':');
  if (addr.empty() || colon == std::string::npos || colon == 0 || colon + 1 == addr.size() ||
      !std::all_of(addr.begin() + static_cast<std::ptrdiff_t>(colon) + 1, addr.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return absl::InvalidArgumentError(
        absl::StrCat("--grpc: expected host:port, got '", address, "'"));
  }
  std::shared_ptr<GrpcTarget> t(new GrpcTarget());
  t->address_ = addr;
  t->api_key_ = std::move(api_key);
  grpc::ChannelArguments args;
  // Large prompts come back in no message, but be generous with replies anyway.
  args.SetMaxReceiveMessageSize(64 << 20);
  t->channel_ = grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
  t->stub_ = pb::Generation::NewStub(t->channel_);
  return t;
}

void GrpcTarget::Prepare(grpc::ClientContext* context) const {
  if (!api_key_.empty()) context->AddMetadata("authorization", "Bearer " + api_key_);
}

absl::StatusOr<std::vector<GrpcModel>> GrpcTarget::ListModels(
    std::chrono::milliseconds timeout) const {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  ctx.set_deadline(DeadlineIn(timeout));
  ctx.set_wait_for_ready(true);  // the first call may race the channel's connection
  pb::ListModelsRequest req;
  pb::ListModelsResponse resp;
  const grpc::Status s = stub_->ListModels(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, absl::StrCat("ListModels on ", address_));
  std::vector<GrpcModel> out;
  for (const pb::ModelInfo& m : resp.models()) out.push_back({m.id(), m.max_model_len()});
  return out;
}

absl::StatusOr<GrpcTarget::TokenCount> GrpcTarget::Tokenize(
    const std::string& model, const std::string& text, std::chrono::milliseconds timeout) const {
  grpc::ClientContext ctx;
  Prepare(&ctx);
  ctx.set_deadline(DeadlineIn(timeout));
  pb::TokenizeRequest req;
  req.set_model(model);
  req.set_text(text);
  req.set_add_special_tokens(false);
  pb::TokenizeResponse resp;
  const grpc::Status s = stub_->Tokenize(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, "Tokenize");
  return TokenCount{resp.count(), resp.max_model_len()};
}

pb::GenerateRequest MakeGenerateRequest(const WorkloadOptions& o, const WorkItem& item) {
  pb::GenerateRequest r;
  r.set_model(o.model);
  if (o.chat) {
    pb::ChatMessage* m = r.mutable_chat()->add_messages();
    m->set_role("user");
    m->set_content(item.prompt);
  } else {
    r.set_text(item.prompt);
  }
  r.set_max_tokens(std::max(1, item.output_tokens));
  r.set_temperature(static_cast<float>(o.temperature));
  r.set_ignore_eos(o.ignore_eos);
  return r;
}

net::awaitable<void> GrpcSender::Send(const WorkItem& item, StreamResult* out) {
  auto ex = co_await net::this_coro::executor;
  auto call = std::make_shared<GenerateCall>(ex);
  call->Start(*target_, MakeGenerateRequest(request_, item), timeouts_.total, call);
  // The watchdog: wakes at the stall limit after the last message (or at a
  // backstop a little past the deadline, should gRPC not enforce it), and is
  // woken early by the call's end.
  const Clock::time_point backstop = call->sent + timeouts_.total + std::chrono::seconds(2);
  bool stalled = false, timed_out = false, cancelled = false;
  boost::system::error_code ec;
  while (!call->ended) {
    call->wake().expires_at(cancelled ? Clock::time_point::max()
                                      : std::min(call->last_event() + timeouts_.stall, backstop));
    co_await call->wake().async_wait(net::redirect_error(net::use_awaitable, ec));
    if (call->ended || cancelled) continue;
    const Clock::time_point now = Clock::now();
    if (now >= backstop) {
      timed_out = cancelled = true;
    } else if (now >= call->last_event() + timeouts_.stall) {
      stalled = cancelled = true;
    }
    if (cancelled) call->Cancel();
  }
  out->sent = call->sent;
  // The output is complete with the `finished` message; the trailing status
  // that follows is protocol, not generation (HTTP's [DONE] plays that role).
  out->done = call->finished ? call->finished_at : call->done;
  out->chunk_times = std::move(call->chunk_times);
  out->streamed_tokens = call->streamed_tokens;
  out->finish_reason = call->finish_reason;
  out->usage_prompt_tokens = call->usage_prompt;
  out->usage_completion_tokens = call->usage_completion;
  out->error_kind = GrpcErrorKind(call->status, stalled, timed_out);
  if (out->error_kind.empty() && !call->finished) out->error_kind = "incomplete";
  out->ok = out->error_kind.empty();
  if (!out->ok) {
    out->error = call->status.ok() ? std::string("the stream ended without a finished message")
                                   : absl::StrCat(GrpcCodeName(call->status.error_code()), ": ",
                                                  call->status.error_message());
  }
}

}  // namespace restkv::bench
