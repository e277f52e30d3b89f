#include "bench/runner.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <deque>

#include "absl/strings/str_format.h"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/detached.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/redirect_error.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/use_awaitable.hpp"

namespace restkv::bench {
namespace {

namespace net = boost::asio;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct LoopState {
  const std::vector<WorkItem>* items = nullptr;
  const RunOptions* options = nullptr;
  Clock::time_point start;
  std::vector<RequestRecord> records;  // indexed by send order
  int64_t in_flight = 0, sent = 0, done = 0, failed = 0, not_sent = 0;
  bool dispatch_done = false;
  Clock::time_point last_done;
  std::unique_ptr<net::steady_timer> slot_freed;  // cancelled when a request ends
  std::unique_ptr<net::steady_timer> tick;        // the progress line's; cancelled at the end
};

net::awaitable<void> OneRequest(LoopState& st, size_t item_index, size_t slot,
                                Clock::time_point intended) {
  const WorkItem& item = (*st.items)[item_index];
  StreamResult result;
  co_await st.options->sender->Send(item, &result);
  st.records[slot] = MakeRecord(static_cast<int64_t>(item_index), st.start, intended, item, result);
  --st.in_flight;
  ++st.done;
  if (!result.ok) ++st.failed;
  st.last_done = Clock::now();
  st.slot_freed->cancel_one();
  if (st.dispatch_done && st.in_flight == 0) st.tick->cancel();
}

net::awaitable<void> Dispatch(LoopState& st) {
  auto ex = co_await net::this_coro::executor;
  net::steady_timer timer(ex);
  boost::system::error_code ec;
  const RunOptions& o = *st.options;
  const bool closed_loop =
      o.max_concurrency > 0 && !st.items->empty() && st.items->back().arrival_s == 0;
  for (size_t i = 0; i < st.items->size(); ++i) {
    const auto due = st.start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>((*st.items)[i].arrival_s));
    if (o.send_window_s > 0 && Seconds(due - st.start) >= o.send_window_s) {
      st.not_sent = static_cast<int64_t>(st.items->size() - i);
      break;
    }
    if (due > Clock::now()) {
      timer.expires_at(due);
      co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    while (o.max_concurrency > 0 && st.in_flight >= o.max_concurrency) {
      st.slot_freed->expires_at(Clock::time_point::max());
      co_await st.slot_freed->async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    if (o.send_window_s > 0 && Seconds(Clock::now() - st.start) >= o.send_window_s) {
      st.not_sent = static_cast<int64_t>(st.items->size() - i);
      break;
    }
    const Clock::time_point intended = closed_loop ? Clock::now() : due;
    const size_t slot = st.records.size();
    st.records.emplace_back();
    ++st.in_flight;
    ++st.sent;
    net::co_spawn(ex, OneRequest(st, i, slot, intended), net::detached);
  }
  st.dispatch_done = true;
  if (st.in_flight == 0) st.tick->cancel();
}

net::awaitable<void> Progress(LoopState& st) {
  net::steady_timer& timer = *st.tick;
  boost::system::error_code ec;
  const bool tty = isatty(fileno(stderr)) != 0;
  std::deque<std::pair<Clock::time_point, int64_t>> history;  // for the current rate
  int tick = 0;
  while (!(st.dispatch_done && st.in_flight == 0)) {
    timer.expires_after(std::chrono::seconds(1));
    co_await timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (st.dispatch_done && st.in_flight == 0) break;
    const auto now = Clock::now();
    history.emplace_back(now, st.done);
    while (history.size() > 6) history.pop_front();
    const double rate = history.size() > 1
                            ? static_cast<double>(history.back().second - history.front().second) /
                                  Seconds(history.back().first - history.front().first)
                            : 0.0;
    const std::string line =
        absl::StrFormat("%s%6.1fs  sent %d/%d  done %d  failed %d  in flight %d  %.2f req/s",
                        st.options->progress_label, Seconds(now - st.start), st.sent,
                        st.items->size(), st.done - st.failed, st.failed, st.in_flight, rate);
    if (tty) {
      std::fprintf(stderr, "\r%-100s", line.c_str());
    } else if (++tick % 10 == 0) {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
  }
  if (tty) std::fprintf(stderr, "\n");
}

}  // namespace

RequestRecord MakeRecord(int64_t index, Clock::time_point start, Clock::time_point intended,
                         const WorkItem& item, const StreamResult& r) {
  RequestRecord rec;
  rec.index = index;
  rec.intended_s = Seconds(intended - start);
  rec.sent_s = Seconds(r.sent - start);
  rec.done_s = Seconds(r.done - start);
  rec.expected_input_tokens = item.input_tokens;
  rec.expected_output_tokens = item.output_tokens;
  rec.ok = r.ok;
  rec.http_status = r.http_status;
  rec.error_kind = r.error_kind;
  rec.error = r.error;
  rec.finish_reason = r.finish_reason;
  rec.chunks = static_cast<int64_t>(r.chunk_times.size());
  rec.streamed_tokens = r.streamed_tokens;
  rec.prompt_tokens = r.usage_prompt_tokens;
  rec.usage_reported = r.usage_completion_tokens >= 0;
  rec.output_tokens = rec.usage_reported ? r.usage_completion_tokens : rec.chunks;
  if (!r.chunk_times.empty()) {
    rec.ttft_ms = Ms(r.chunk_times.front() - intended);
    for (size_t i = 1; i < r.chunk_times.size(); ++i)
      rec.itl_ms.push_back(Ms(r.chunk_times[i] - r.chunk_times[i - 1]));
  }
  if (r.ok) {
    rec.e2el_ms = Ms(r.done - intended);
    if (rec.ttft_ms >= 0 && rec.output_tokens > 1) {
      rec.tpot_ms = (rec.e2el_ms - rec.ttft_ms) / static_cast<double>(rec.output_tokens - 1);
    }
  }
  return rec;
}

absl::StatusOr<RunResult> RunLoad(const std::vector<WorkItem>& items, const RunOptions& options) {
  if (options.sender == nullptr) return absl::InvalidArgumentError("RunLoad: no sender");
  net::io_context ioc(1);
  LoopState st;
  st.items = &items;
  st.options = &options;
  st.slot_freed = std::make_unique<net::steady_timer>(ioc);
  st.tick = std::make_unique<net::steady_timer>(ioc);
  st.records.reserve(items.size());
  const double cpu0 = CpuSeconds();
  st.start = Clock::now();
  st.last_done = st.start;
  net::co_spawn(ioc, Dispatch(st), net::detached);
  if (options.progress) net::co_spawn(ioc, Progress(st), net::detached);
  ioc.run();
  RunResult out;
  out.records = std::move(st.records);
  out.not_sent = st.not_sent;
  out.duration_s = Seconds(st.last_done - st.start);
  out.client_cpu_s = CpuSeconds() - cpu0;
  out.start_monotonic_s = std::chrono::duration<double>(st.start.time_since_epoch()).count();
  return out;
}

}  // namespace restkv::bench
