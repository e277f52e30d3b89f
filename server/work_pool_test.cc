#include "server/work_pool.h"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include "gtest/gtest.h"

namespace restkv::server {
namespace {

TEST(WorkPoolTest, RunsEveryAcceptedTask) {
  std::atomic<int> ran{0};
  {
    WorkPool pool(2, 100);
    std::promise<void> all;
    for (int i = 0; i < 50; ++i) {
      WorkPool::Task task = [&ran, &all] {
        if (++ran == 50) all.set_value();
      };
      ASSERT_TRUE(pool.TrySubmit(task));
    }
    ASSERT_EQ(all.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  }
  EXPECT_EQ(ran.load(), 50);
}

TEST(WorkPoolTest, RefusesWhenTheQueueIsFull) {
  WorkPool pool(1, 2);
  std::promise<void> started;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  WorkPool::Task blocker = [&started, released] {
    started.set_value();
    released.wait();
  };
  ASSERT_TRUE(pool.TrySubmit(blocker));
  started.get_future().wait();  // the worker is busy; the queue is empty
  WorkPool::Task a = [] {};
  WorkPool::Task b = [] {};
  WorkPool::Task c = [] {};
  EXPECT_TRUE(pool.TrySubmit(a));
  EXPECT_TRUE(pool.TrySubmit(b));
  EXPECT_EQ(pool.queued(), 2u);
  EXPECT_FALSE(pool.TrySubmit(c));
  EXPECT_TRUE(static_cast<bool>(c));  // a refused task is left to the caller
  release.set_value();
}

TEST(WorkPoolTest, DestructionDropsQueuedTasksWithoutRunningThem) {
  auto token = std::make_shared<int>(0);
  std::atomic<int> ran{0};
  std::promise<void> started;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  {
    std::jthread releaser;  // declared first: joined after the pool's destructor returns
    WorkPool pool(1, 10);
    WorkPool::Task blocker = [&started, released] {
      started.set_value();
      released.wait();
    };
    ASSERT_TRUE(pool.TrySubmit(blocker));
    started.get_future().wait();
    WorkPool::Task queued = [token, &ran] { ++ran; };
    ASSERT_TRUE(pool.TrySubmit(queued));
    EXPECT_EQ(token.use_count(), 2);
    // Released only once the destructor has begun (and dropped the queue).
    releaser = std::jthread([&release] {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      release.set_value();
    });
  }
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(token.use_count(), 1);  // the dropped task was destroyed
}

}  // namespace
}  // namespace restkv::server
