#include "server/request_recorder.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace restkv::server {
namespace {

std::vector<int32_t> Tokens(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(i * 7 + salt);
  return t;
}

TEST(ChainedBlockHashes, SharedPrefixSharesHashesUntilTheFirstDifference) {
  std::vector<int32_t> a = Tokens(1300, 0);  // blocks 512, 512, 276
  std::vector<int32_t> b = a;
  b[700] = -5;  // differs in block 1
  const auto ha = ChainedBlockHashes(a), hb = ChainedBlockHashes(b);
  ASSERT_EQ(ha.size(), 3u);
  ASSERT_EQ(hb.size(), 3u);
  EXPECT_EQ(ha[0], hb[0]);
  EXPECT_NE(ha[1], hb[1]);
  EXPECT_NE(ha[2], hb[2]);  // chained: same tokens after a different block still differ
  // A prompt that is a prefix of whole blocks shares those hashes.
  const auto prefix = ChainedBlockHashes(std::vector<int32_t>(a.begin(), a.begin() + 1024));
  ASSERT_EQ(prefix.size(), 2u);
  EXPECT_EQ(prefix[0], ha[0]);
  EXPECT_EQ(prefix[1], ha[1]);
  EXPECT_TRUE(ChainedBlockHashes({}).empty());
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + std::to_string(::getpid()))).string();
}

TEST(RequestRecorder, WritesMooncakeLinesWithIdsInOrderOfFirstAppearance) {
  const std::string path = TempPath("restkv_recorder_test_");
  std::FILE* log_file = std::tmpfile();
  RequestLogger log(log_file);
  {
    RequestRecorder rec(path, &log);
    ASSERT_TRUE(rec.active());
    const auto t0 = std::chrono::steady_clock::now();
    RecordedRequest r;
    r.arrival = t0 + std::chrono::milliseconds(250);
    r.input_length = 1300;
    r.output_length = 9;
    r.block_hashes = ChainedBlockHashes(Tokens(1300, 0));
    r.endpoint = "/v1/completions";
    r.finish = "length";
    r.request_id = "cmpl-client-7";
    rec.Record(r);
    r.block_hashes = ChainedBlockHashes(Tokens(600, 0));  // shares block 0 only
    r.input_length = 600;
    r.request_id.clear();
    rec.Record(r);
  }  // the destructor drains the queue
  std::ifstream in(path);
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  std::filesystem::remove(path);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["hash_ids"], nlohmann::json({0, 1, 2}));
  EXPECT_EQ(lines[1]["hash_ids"], nlohmann::json({0, 3}));
  EXPECT_EQ(lines[0]["input_length"], 1300);
  EXPECT_EQ(lines[0]["output_length"], 9);
  EXPECT_EQ(lines[0]["endpoint"], "/v1/completions");
  EXPECT_EQ(lines[0]["request_id"], "cmpl-client-7");
  EXPECT_FALSE(lines[1].contains("request_id"));  // none: not written
  EXPECT_GE(lines[0]["timestamp"].get<double>(), 250.0);
  EXPECT_LT(lines[0]["timestamp"].get<double>(), 5000.0);
  std::fclose(log_file);
}

TEST(RequestRecorder, UnopenableFileIsLoggedAndRecordingIsOff) {
  std::FILE* log_file = std::tmpfile();
  RequestLogger log(log_file);
  RequestRecorder rec("/nonexistent-dir/x/trace.jsonl", &log);
  EXPECT_FALSE(rec.active());
  rec.Record({});
  EXPECT_EQ(rec.dropped(), 1);
  std::rewind(log_file);
  char buf[512] = {};
  ASSERT_NE(std::fgets(buf, sizeof buf, log_file), nullptr);
  EXPECT_NE(std::string(buf).find("cannot open"), std::string::npos);
  std::fclose(log_file);
}

TEST(RequestRecorder, FullDiskStopsRecordingAfterOneLogLine) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  std::FILE* log_file = std::tmpfile();
  RequestLogger log(log_file);
  {
    RequestRecorder rec("/dev/full", &log);
    ASSERT_TRUE(rec.active());
    for (int i = 0; i < 50; ++i) {
      rec.Record({});
      if (i == 10) {
        // Give the writer a chance to fail, so later records see it stopped.
        for (int k = 0; k < 200 && rec.active(); ++k)
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    EXPECT_FALSE(rec.active());
    EXPECT_EQ(rec.written(), 0);
  }
  std::rewind(log_file);
  int failures = 0;
  char buf[512];
  while (std::fgets(buf, sizeof buf, log_file) != nullptr) {
    if (std::string(buf).find("writing failed") != std::string::npos) ++failures;
  }
  EXPECT_EQ(failures, 1);
  std::fclose(log_file);
}

}  // namespace
}  // namespace restkv::server
