#include "bench/summary.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace restkv::bench {

absl::StatusOr<GoodputSlo> ParseGoodput(const std::vector<std::string>& specs) {
  GoodputSlo slo;
  for (const std::string& spec : specs) {
    for (absl::string_view item : absl::StrSplit(spec, absl::ByAnyChar(", "), absl::SkipEmpty())) {
      std::vector<std::string> kv = absl::StrSplit(item, ':');
      double ms = 0;
      if (kv.size() != 2 || !absl::SimpleAtod(kv[1], &ms) || ms < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--goodput: expected METRIC:MS (ttft, tpot, e2el), got '", item, "'"));
      }
      if (kv[0] == "ttft") {
        slo.ttft_ms = ms;
      } else if (kv[0] == "tpot") {
        slo.tpot_ms = ms;
      } else if (kv[0] == "e2el") {
        slo.e2el_ms = ms;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("--goodput: unknown metric '", kv[0], "' (ttft, tpot, e2el)"));
      }
    }
  }
  return slo;
}

bool MeetsSlo(const RequestRecord& r, const GoodputSlo& slo) {
  if (!r.ok) return false;
  if (slo.ttft_ms >= 0 && (r.ttft_ms < 0 || r.ttft_ms > slo.ttft_ms)) return false;
  if (slo.tpot_ms >= 0 && r.tpot_ms > slo.tpot_ms) return false;
  if (slo.e2el_ms >= 0 && r.e2el_ms > slo.e2el_ms) return false;
  return true;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  const double rank = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo));
}

namespace {

void AddStats(const std::string& name, const std::vector<double>& v,
              std::map<std::string, double>* out) {
  double mean = 0, var = 0;
  for (double x : v) mean += x;
  if (!v.empty()) mean /= static_cast<double>(v.size());
  for (double x : v) var += (x - mean) * (x - mean);
  if (!v.empty()) var /= static_cast<double>(v.size());  // numpy's std (ddof 0), as vLLM
  const double nan = std::numeric_limits<double>::quiet_NaN();
  (*out)["mean_" + name + "_ms"] = v.empty() ? nan : mean;
  (*out)["median_" + name + "_ms"] = Percentile(v, 50);
  (*out)["std_" + name + "_ms"] = v.empty() ? nan : std::sqrt(var);
  (*out)["p90_" + name + "_ms"] = Percentile(v, 90);
  (*out)["p99_" + name + "_ms"] = Percentile(v, 99);
}

nlohmann::json Num(double x) {
  return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
}

}  // namespace

Summary Summarize(const std::vector<RequestRecord>& records, double duration_s,
                  const GoodputSlo& slo) {
  Summary s;
  s.num_requests = static_cast<int64_t>(records.size());
  s.duration_s = duration_s;
  std::vector<double> ttft, tpot, itl, e2el, lag;
  int64_t good = 0;
  std::vector<std::pair<double, int>> edges;  // for the most requests in flight
  for (const RequestRecord& r : records) {
    lag.push_back(std::max(0.0, (r.sent_s - r.intended_s) * 1000.0));
    edges.emplace_back(r.sent_s, +1);
    edges.emplace_back(r.done_s, -1);
    if (!r.ok) {
      ++s.failed;
      ++s.errors[r.error_kind.empty() ? "unknown" : r.error_kind];
      continue;
    }
    ++s.completed;
    if (r.prompt_tokens > 0)
      s.total_input_tokens += r.prompt_tokens;
    else
      s.total_input_tokens += r.expected_input_tokens;
    s.total_output_tokens += std::max<int64_t>(r.output_tokens, 0);
    if (r.ttft_ms >= 0) ttft.push_back(r.ttft_ms);
    if (r.tpot_ms >= 0) tpot.push_back(r.tpot_ms);
    itl.insert(itl.end(), r.itl_ms.begin(), r.itl_ms.end());
    e2el.push_back(r.e2el_ms);
    // A chunk may carry several tokens, never less than one; where the stream
    // carries token ids (gRPC), their count must equal usage exactly.
    if (r.usage_reported && (r.chunks > r.output_tokens ||
                             (r.streamed_tokens >= 0 && r.streamed_tokens != r.output_tokens)))
      ++s.usage_mismatches;
    if (slo.any() && MeetsSlo(r, slo)) ++good;
  }
  std::sort(edges.begin(), edges.end());
  int64_t now = 0;
  for (const auto& [t, d] : edges)
    s.max_concurrent_requests = std::max(s.max_concurrent_requests, now += d);
  if (duration_s > 0) {
    s.request_throughput = static_cast<double>(s.completed) / duration_s;
    s.output_throughput = static_cast<double>(s.total_output_tokens) / duration_s;
    s.total_token_throughput =
        static_cast<double>(s.total_input_tokens + s.total_output_tokens) / duration_s;
    if (slo.any()) s.request_goodput = static_cast<double>(good) / duration_s;
  }
  AddStats("ttft", ttft, &s.latency);
  AddStats("tpot", tpot, &s.latency);
  AddStats("itl", itl, &s.latency);
  AddStats("e2el", e2el, &s.latency);
  if (!lag.empty()) {
    double sum = 0;
    for (double x : lag) sum += x;
    s.mean_send_lag_ms = sum / static_cast<double>(lag.size());
    s.p99_send_lag_ms = Percentile(lag, 99);
    s.max_send_lag_ms = *std::max_element(lag.begin(), lag.end());
  }
  return s;
}

nlohmann::json SummaryJson(const Summary& s) {
  nlohmann::json j = {
      {"num_requests", s.num_requests},
      {"completed", s.completed},
      {"failed", s.failed},
      {"total_input_tokens", s.total_input_tokens},
      {"total_output_tokens", s.total_output_tokens},
      {"duration", s.duration_s},
      {"request_throughput", s.request_throughput},
      {"output_throughput", s.output_throughput},
      {"total_token_throughput", s.total_token_throughput},
      {"request_goodput",
       s.request_goodput < 0 ? nlohmann::json(nullptr) : nlohmann::json(s.request_goodput)},
      {"errors", s.errors},
      {"mean_send_lag_ms", s.mean_send_lag_ms},
      {"p99_send_lag_ms", s.p99_send_lag_ms},
      {"max_send_lag_ms", s.max_send_lag_ms},
      {"max_concurrent_requests", s.max_concurrent_requests},
      {"usage_mismatches", s.usage_mismatches},
  };
  for (const auto& [k, v] : s.latency) j[k] = Num(v);
  return j;
}

nlohmann::json RecordJson(const RequestRecord& r) {
  nlohmann::json j = {
      {"index", r.index},
      {"intended_s", r.intended_s},
      {"sent_s", r.sent_s},
      {"done_s", r.done_s},
      {"expected_input_tokens", r.expected_input_tokens},
      {"expected_output_tokens", r.expected_output_tokens},
      {"ok", r.ok},
      {"http_status", r.http_status},
      {"ttft_ms", r.ttft_ms < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.ttft_ms)},
      {"tpot_ms", r.tpot_ms < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.tpot_ms)},
      {"e2el_ms", r.e2el_ms < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.e2el_ms)},
      {"itl_ms", r.itl_ms},
      {"prompt_tokens", r.prompt_tokens},
      {"output_tokens", r.output_tokens},
      {"chunks", r.chunks},
      {"finish_reason", r.finish_reason},
  };
  if (r.streamed_tokens >= 0) j["streamed_tokens"] = r.streamed_tokens;
  if (!r.ok) {
    j["error_kind"] = r.error_kind;
    j["error"] = r.error;
  }
  return j;
}

std::string FormatSummaryTable(const Summary& s, const std::string& title) {
  std::string out;
  auto rule = [&](char c, const std::string& text) {
    const int width = 56;
    const int pad = std::max(0, width - static_cast<int>(text.size()) - 2);
    absl::StrAppend(&out, std::string(pad / 2, c),
                    text.empty() ? std::string(2, c) : " " + text + " ",
                    std::string(pad - pad / 2, c), "\n");
  };
  auto row = [&](const std::string& k, const std::string& v) {
    absl::StrAppend(&out, absl::StrFormat("%-40s%16s\n", k, v));
  };
  auto num = [](double x, int digits) {
    return std::isfinite(x) ? absl::StrFormat("%.*f", digits, x) : std::string("n/a");
  };
  rule('=', title);
  row("Successful requests:", absl::StrCat(s.completed));
  row("Failed requests:", absl::StrCat(s.failed));
  for (const auto& [kind, n] : s.errors) row(absl::StrCat("  ", kind, ":"), absl::StrCat(n));
  row("Benchmark duration (s):", num(s.duration_s, 2));
  row("Total input tokens:", absl::StrCat(s.total_input_tokens));
  row("Total generated tokens:", absl::StrCat(s.total_output_tokens));
  row("Request throughput (req/s):", num(s.request_throughput, 2));
  if (s.request_goodput >= 0) row("Request goodput (req/s):", num(s.request_goodput, 2));
  row("Output token throughput (tok/s):", num(s.output_throughput, 2));
  row("Total token throughput (tok/s):", num(s.total_token_throughput, 2));
  row("Max concurrent requests:", absl::StrCat(s.max_concurrent_requests));
  row("Sender lag mean/p99/max (ms):",
      absl::StrFormat("%s/%s/%s", num(s.mean_send_lag_ms, 1), num(s.p99_send_lag_ms, 1),
                      num(s.max_send_lag_ms, 1)));
  const std::pair<const char*, const char*> sections[] = {
      {"ttft", "Time to First Token"},
      {"tpot", "Time per Output Token (excl. 1st token)"},
      {"itl", "Inter-token Latency"},
      {"e2el", "End-to-end Latency"}};
  for (const auto& [key, name] : sections) {
    rule('-', name);
    for (const char* stat : {"mean", "median", "p90", "p99"}) {
      const std::string k = absl::StrCat(stat, "_", key, "_ms");
      auto it = s.latency.find(k);
      row(absl::StrFormat("%s %s (ms):",
                          stat[0] == 'p' ? absl::StrCat("P", stat + 1)
                                         : absl::StrCat(std::string(1, stat[0] - 32), stat + 1),
                          absl::AsciiStrToUpper(key)),
          num(it == s.latency.end() ? NAN : it->second, 2));
    }
  }
  rule('=', "");
  return out;
}

}  // namespace restkv::bench
