#include "bench/trace.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace restkv::bench {
namespace {

using ::testing::HasSubstr;

TEST(Mooncake, ParsesLinesAndKeepsOrder) {
  const std::string text =
      "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 10, \"hash_ids\": [0, 1]}\n"
      "\n"
      "{\"timestamp\": 1500.5, \"input_length\": 10, \"output_length\": 3, \"hash_ids\": [0], "
      "\"endpoint\": \"/v1/completions\"}\n";
  auto t = ParseMooncake(text, "t.jsonl");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->requests.size(), 2u);
  EXPECT_DOUBLE_EQ(t->requests[1].arrival_s, 1.5005);
  EXPECT_EQ(t->requests[0].hash_ids, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(t->requests[1].line, 3);
}

TEST(Mooncake, ErrorsNameFileAndLine) {
  auto bad_json = ParseMooncake(
      "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1}\n{oops\n", "trace.jsonl");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_THAT(std::string(bad_json.status().message()), HasSubstr("trace.jsonl:2:"));
  auto missing = ParseMooncake("{\"timestamp\": 0, \"output_length\": 1}\n", "m.jsonl");
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("m.jsonl:1: 'input_length' is missing"));
  auto negative =
      ParseMooncake("{\"timestamp\": -1, \"input_length\": 1, \"output_length\": 1}", "n");
  EXPECT_THAT(std::string(negative.status().message()), HasSubstr("n:1: 'timestamp'"));
  auto short_ids = ParseMooncake(
      "{\"timestamp\": 0, \"input_length\": 1025, \"output_length\": 1, \"hash_ids\": [1, 2]}",
      "s");
  EXPECT_THAT(std::string(short_ids.status().message()), HasSubstr("s:1: 2 hash_ids cannot cover"));
  EXPECT_FALSE(ParseMooncake("\n\n", "empty").ok());
}

TEST(BurstGpt, ReadsColumnsByNameAndSkipsFailedRows) {
  const std::string text =
      "Model,Timestamp,Request tokens,Response tokens,Total tokens,Log Type\n"
      "ChatGPT,5,472,18,490,Conversation log\n"
      "ChatGPT,45,1087,0,1087,Conversation log\n"
      "GPT-4,118,417,170,587,API log\n";
  auto t = ParseBurstGpt(text, "b.csv");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->requests.size(), 2u);
  EXPECT_EQ(t->skipped, 1);
  EXPECT_DOUBLE_EQ(t->requests[1].arrival_s, 118);
  EXPECT_EQ(t->requests[1].input_len, 417);
  EXPECT_EQ(t->requests[1].output_len, 170);
}

TEST(BurstGpt, ErrorsNameFileAndLine) {
  auto no_col = ParseBurstGpt("Timestamp,Request tokens\n1,2\n", "b.csv");
  EXPECT_THAT(std::string(no_col.status().message()),
              HasSubstr("b.csv:1: the header has no 'Response tokens'"));
  auto bad = ParseBurstGpt("Timestamp,Request tokens,Response tokens\n1,2,3\n1,x,3\n", "b.csv");
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("b.csv:3: 'Request tokens'"));
  auto short_row = ParseBurstGpt("Timestamp,Request tokens,Response tokens\n1,2\n", "b.csv");
  EXPECT_THAT(std::string(short_row.status().message()), HasSubstr("b.csv:2:"));
}

TEST(ShareGpt, FirstHumanTurnAndItsReply) {
  const std::string text = R"([
    {"id": "a", "conversations": [{"from": "system", "value": "sys"},
                                  {"from": "human", "value": "hello there"},
                                  {"from": "gpt", "value": "general kenobi"}]},
    {"id": "b", "conversations": [{"from": "human", "value": "alone"}]}
  ])";
  auto t = ParseShareGpt(text, "s.json");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->requests.size(), 1u);
  EXPECT_EQ(t->skipped, 1);
  EXPECT_EQ(t->requests[0].prompt, "hello there");
  EXPECT_EQ(t->requests[0].reply, "general kenobi");
}

TEST(ShareGpt, ErrorsNameFileAndLine) {
  auto bad = ParseShareGpt("[\n{\"conversations\": []},\n{oops}\n]", "s.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("s.json:3:"));
  auto turn = ParseShareGpt(R"([{"conversations": [{"from": "human"}]}])", "s.json");
  EXPECT_THAT(std::string(turn.status().message()), HasSubstr("s.json: entry 0"));
}

TEST(Window, KeepsTheWindowRebasedAndScalesExactly) {
  Trace t;
  for (double s : {0.0, 1.0, 2.5, 4.0, 7.0}) {
    TraceRequest r;
    r.arrival_s = s;
    t.requests.push_back(r);
  }
  auto w = ParseTimeWindow("1:7");
  ASSERT_TRUE(w.ok());
  ApplyWindowAndScale(*w, 0.5, &t);
  ASSERT_EQ(t.requests.size(), 3u);
  EXPECT_EQ(t.requests[0].arrival_s, 0.0);
  EXPECT_EQ(t.requests[1].arrival_s, 0.75);  // (2.5 - 1) * 0.5, exact in binary
  EXPECT_EQ(t.requests[2].arrival_s, 1.5);
  EXPECT_TRUE(ParseTimeWindow(":3").ok());
  EXPECT_TRUE(ParseTimeWindow("3:").ok());
  EXPECT_FALSE(ParseTimeWindow("3").ok());
  EXPECT_FALSE(ParseTimeWindow("5:2").ok());
}

TEST(Window, SortsByArrival) {
  Trace t;
  for (double s : {3.0, 1.0, 2.0}) {
    TraceRequest r;
    r.arrival_s = s;
    r.input_len = static_cast<int32_t>(s);
    t.requests.push_back(r);
  }
  ApplyWindowAndScale({}, 2.0, &t);
  EXPECT_EQ(t.requests[0].input_len, 1);
  EXPECT_EQ(t.requests[2].arrival_s, 6.0);
}

TEST(Format, FromNameOrExtension) {
  EXPECT_EQ(*ResolveTraceFormat("", "a.jsonl"), TraceFormat::kMooncake);
  EXPECT_EQ(*ResolveTraceFormat("", "a.csv"), TraceFormat::kBurstGpt);
  EXPECT_EQ(*ResolveTraceFormat("ShareGPT", "a.txt"), TraceFormat::kShareGpt);
  EXPECT_FALSE(ResolveTraceFormat("", "a.txt").ok());
  EXPECT_FALSE(LoadTrace("/nonexistent/trace.jsonl", TraceFormat::kMooncake).ok());
}

}  // namespace
}  // namespace restkv::bench
