#include "bench/runner.h"

#include <chrono>

#include "boost/asio/steady_timer.hpp"
#include "boost/asio/this_coro.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "gtest/gtest.h"

namespace restkv::bench {
namespace {

namespace net = boost::asio;
using std::chrono::milliseconds;

// A transport that answers every request with `tokens` chunks: the first
// after `ttft`, then one every `itl`; it counts how many were in flight.
class DelaySender final : public RequestSender {
 public:
  DelaySender(milliseconds ttft, milliseconds itl, int tokens)
      : ttft_(ttft), itl_(itl), tokens_(tokens) {}

  net::awaitable<void> Send(const WorkItem& item, StreamResult* out) override {
    out->sent = Clock::now();
    max_in_flight = std::max(max_in_flight, ++in_flight_);
    net::steady_timer timer(co_await net::this_coro::executor);
    for (int i = 0; i < tokens_; ++i) {
      timer.expires_after(i == 0 ? ttft_ : itl_);
      co_await timer.async_wait(net::use_awaitable);
      out->chunk_times.push_back(Clock::now());
    }
    --in_flight_;
    out->done = Clock::now();
    out->usage_completion_tokens = tokens_;
    out->usage_prompt_tokens = item.input_tokens;
    out->ok = true;
  }

  int max_in_flight = 0;

 private:
  milliseconds ttft_, itl_;
  int tokens_;
  int in_flight_ = 0;
};

std::vector<WorkItem> Items(std::vector<double> arrivals) {
  std::vector<WorkItem> items;
  for (double a : arrivals) {
    WorkItem w;
    w.arrival_s = a;
    w.input_tokens = 10;
    w.output_tokens = 3;
    items.push_back(w);
  }
  return items;
}

TEST(RunLoad, OpenLoopSendsOnScheduleWhateverTheResponsesDo) {
  // Each request takes 300 ms; one is due every 50 ms: an open loop must not wait.
  DelaySender sender(milliseconds(200), milliseconds(50), 3);
  RunOptions o;
  o.sender = &sender;
  o.progress = false;
  auto r = RunLoad(Items({0, 0.05, 0.10, 0.15, 0.20}), o);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->records.size(), 5u);
  EXPECT_EQ(sender.max_in_flight, 5);
  for (const RequestRecord& rec : r->records) {
    EXPECT_TRUE(rec.ok);
    // Bounds are loose upwards: a busy shared machine may run timers late.
    EXPECT_GE(rec.sent_s, rec.intended_s);
    EXPECT_LT(rec.sent_s - rec.intended_s, 0.1);
    EXPECT_GE(rec.ttft_ms, 199);
    EXPECT_LT(rec.ttft_ms, 350);
    EXPECT_GE(rec.e2el_ms, 299);
    EXPECT_LT(rec.e2el_ms, 500);
    EXPECT_EQ(rec.itl_ms.size(), 2u);
    EXPECT_EQ(rec.output_tokens, 3);
  }
  EXPECT_GE(r->duration_s, 0.499);
  EXPECT_LT(r->duration_s, 0.8);
}

TEST(RunLoad, ClosedLoopWaitsForSlotsAndCountsFromThem) {
  DelaySender sender(milliseconds(60), milliseconds(20), 2);
  RunOptions o;
  o.sender = &sender;
  o.progress = false;
  o.max_concurrency = 1;
  auto r = RunLoad(Items({0, 0, 0, 0}), o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(sender.max_in_flight, 1);
  for (size_t i = 0; i < r->records.size(); ++i) {
    const RequestRecord& rec = r->records[i];
    // Each waits ~80 ms for the one before; its latency counts from its slot.
    if (i > 0) {
      EXPECT_GE(rec.intended_s - r->records[i - 1].intended_s, 0.079);
    }
    EXPECT_GE(rec.ttft_ms, 59);
    EXPECT_LT(rec.ttft_ms, 160);
  }
}

TEST(RunLoad, NeedsASender) {
  RunOptions o;
  EXPECT_EQ(RunLoad(Items({0}), o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace restkv::bench
