#include "common/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <vector>

namespace restkv {
namespace {

TEST(ThreadPoolTest, CoversEveryIndexOnceInGrainAlignedRanges) {
  for (const int threads : {1, 2, 4, 7}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (const int64_t n : {1, 2, 3, 10, 64, 1000}) {
      for (const int64_t grain : {1, 3, 16}) {
        // Plain ints written by the workers and read here after the call:
        // ParallelFor's return must publish them (TSan checks the ordering).
        std::vector<int> hits(n, 0);
        std::vector<int> thread_of(n, -1);
        pool.ParallelFor(
            n,
            [&](int64_t begin, int64_t end, int thread_idx) {
              EXPECT_LT(begin, end);
              EXPECT_EQ(begin % grain, 0);
              EXPECT_TRUE(end == n || end % grain == 0);
              for (int64_t i = begin; i < end; ++i) {
                ++hits[i];
                thread_of[i] = thread_idx;
              }
            },
            grain);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(hits[i], 1) << "threads " << threads << " n " << n << " grain " << grain;
          ASSERT_GE(thread_of[i], 0);
          ASSERT_LT(thread_of[i], threads);
        }
      }
    }
  }
}

TEST(ThreadPoolTest, EmptyRangeRunsNothing) {
  ThreadPool pool(3);
  int calls = 0;
  pool.ParallelFor(0, [&](int64_t, int64_t, int) { ++calls; });
  pool.ParallelFor(-5, [&](int64_t, int64_t, int) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPoolTest, BackToBackLoopsSeeEachOthersWrites) {
  // A decode step issues hundreds of short loops in a row; each loop reads
  // what the previous one wrote, through the pool's own synchronisation only.
  ThreadPool pool(4);
  constexpr int64_t kN = 256;
  std::vector<int64_t> a(kN, 0), b(kN, 0);
  for (int round = 0; round < 500; ++round) {
    std::vector<int64_t>& src = round % 2 == 0 ? a : b;
    std::vector<int64_t>& dst = round % 2 == 0 ? b : a;
    pool.ParallelFor(kN, [&](int64_t begin, int64_t end, int) {
      for (int64_t i = begin; i < end; ++i) dst[i] = src[(i + 1) % kN] + 1;
    });
  }
  // Every element went through 500 increments (reading a neighbour).
  for (int64_t i = 0; i < kN; ++i) EXPECT_EQ(a[i], 500);
}

TEST(ThreadPoolTest, DestroysIdleAndUsedPools) {
  for (int i = 0; i < 20; ++i) {
    ThreadPool idle(3);
  }
  std::atomic<int64_t> sum{0};
  for (int i = 0; i < 20; ++i) {
    ThreadPool used(3);
    used.ParallelFor(30, [&](int64_t begin, int64_t end, int) { sum += end - begin; });
  }
  EXPECT_EQ(sum.load(), 20 * 30);
}

}  // namespace
}  // namespace restkv
