#include "bench/trace.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace restkv::bench {
namespace {

using nlohmann::json;

absl::Status LineError(const std::string& path, int64_t line, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrFormat("%s:%d: %s", path, line, what));
}

// A non-negative integer field that fits int32.
absl::StatusOr<int32_t> IntField(const json& obj, const char* name, const std::string& path,
                                 int64_t line) {
  auto it = obj.find(name);
  if (it == obj.end()) return LineError(path, line, absl::StrFormat("'%s' is missing", name));
  if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX) {
    return LineError(
        path, line,
        absl::StrFormat("'%s' must be a non-negative integer, got %s", name, it->dump()));
  }
  return static_cast<int32_t>(it->get<int64_t>());
}

int64_t LineOfOffset(absl::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + std::count(text.begin(), text.begin() + static_cast<ptrdiff_t>(offset), '\n');
}

// Splits one CSV line; fields may be double-quoted ("" inside quotes is a quote).
std::vector<std::string> SplitCsv(absl::string_view line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        out.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else if (c != '\r') {
      out.back() += c;
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<TraceFormat> ResolveTraceFormat(absl::string_view name, absl::string_view path) {
  std::string n = absl::AsciiStrToLower(std::string(name));
  if (n.empty()) {
    if (absl::EndsWith(path, ".jsonl")) return TraceFormat::kMooncake;
    if (absl::EndsWith(path, ".csv")) return TraceFormat::kBurstGpt;
    if (absl::EndsWith(path, ".json")) return TraceFormat::kShareGpt;
    return absl::InvalidArgumentError(
        absl::StrCat("cannot tell the trace format of ", path,
                     " from its extension (.jsonl, .csv, .json); give --replay-format"));
  }
  if (n == "mooncake") return TraceFormat::kMooncake;
  if (n == "burstgpt") return TraceFormat::kBurstGpt;
  if (n == "sharegpt") return TraceFormat::kShareGpt;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown trace format '", name, "' (mooncake, burstgpt, sharegpt)"));
}

absl::StatusOr<Trace> LoadTrace(const std::string& path, TraceFormat format) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open trace ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  switch (format) {
    case TraceFormat::kMooncake:
      return ParseMooncake(text, path);
    case TraceFormat::kBurstGpt:
      return ParseBurstGpt(text, path);
    case TraceFormat::kShareGpt:
      return ParseShareGpt(text, path);
  }
  return absl::InternalError("unreachable");
}

absl::StatusOr<Trace> ParseMooncake(absl::string_view text, const std::string& path) {
  Trace trace;
  int64_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    json obj;
    try {
      obj = json::parse(line);
    } catch (const json::exception& e) {
      return LineError(path, line_no, absl::StrCat("not valid JSON: ", e.what()));
    }
    if (!obj.is_object()) return LineError(path, line_no, "expected a JSON object");
    TraceRequest r;
    r.line = line_no;
    auto ts = obj.find("timestamp");
    if (ts == obj.end()) return LineError(path, line_no, "'timestamp' is missing");
    if (!ts->is_number() || ts->get<double>() < 0 || !std::isfinite(ts->get<double>())) {
      return LineError(
          path, line_no,
          absl::StrCat("'timestamp' must be a non-negative number (ms), got ", ts->dump()));
    }
    r.arrival_s = ts->get<double>() / 1000.0;
    auto in_len = IntField(obj, "input_length", path, line_no);
    if (!in_len.ok()) return in_len.status();
    auto out_len = IntField(obj, "output_length", path, line_no);
    if (!out_len.ok()) return out_len.status();
    r.input_len = *in_len;
    r.output_len = *out_len;
    if (auto h = obj.find("hash_ids"); h != obj.end()) {
      if (!h->is_array()) return LineError(path, line_no, "'hash_ids' must be an array");
      for (const json& id : *h) {
        if (!id.is_number_integer()) {
          return LineError(path, line_no,
                           absl::StrCat("'hash_ids' must hold integers, got ", id.dump()));
        }
        r.hash_ids.push_back(id.get<int64_t>());
      }
      const int64_t blocks = (int64_t{r.input_len} + kHashBlockTokens - 1) / kHashBlockTokens;
      if (static_cast<int64_t>(r.hash_ids.size()) < blocks) {
        return LineError(path, line_no,
                         absl::StrFormat("%d hash_ids cannot cover input_length %d (%d-token "
                                         "blocks need %d)",
                                         r.hash_ids.size(), r.input_len, kHashBlockTokens, blocks));
      }
    }
    trace.requests.push_back(std::move(r));
  }
  if (trace.requests.empty()) return absl::InvalidArgumentError(path + ": no requests in trace");
  return trace;
}

absl::StatusOr<Trace> ParseBurstGpt(absl::string_view text, const std::string& path) {
  Trace trace;
  trace.skipped_why = "failed requests in the log (0 response tokens)";
  std::map<std::string, size_t> columns;
  int64_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    std::vector<std::string> fields = SplitCsv(line);
    if (columns.empty()) {
      for (size_t i = 0; i < fields.size(); ++i) {
        columns[std::string(absl::StripAsciiWhitespace(fields[i]))] = i;
      }
      for (const char* need : {"Timestamp", "Request tokens", "Response tokens"}) {
        if (!columns.contains(need)) {
          return LineError(path, line_no, absl::StrCat("the header has no '", need, "' column"));
        }
      }
      continue;
    }
    auto get = [&](const char* name, double* out) -> absl::Status {
      const size_t i = columns[name];
      if (i >= fields.size()) {
        return LineError(
            path, line_no,
            absl::StrFormat("row has %d fields; '%s' is field %d", fields.size(), name, i + 1));
      }
      const std::string value(absl::StripAsciiWhitespace(fields[i]));
      if (!absl::SimpleAtod(value, out) || !std::isfinite(*out) || *out < 0) {
        return LineError(
            path, line_no,
            absl::StrFormat("'%s' must be a non-negative number, got '%s'", name, value));
      }
      return absl::OkStatus();
    };
    double ts = 0, req = 0, resp = 0;
    if (absl::Status s = get("Timestamp", &ts); !s.ok()) return s;
    if (absl::Status s = get("Request tokens", &req); !s.ok()) return s;
    if (absl::Status s = get("Response tokens", &resp); !s.ok()) return s;
    if (req > INT32_MAX || resp > INT32_MAX)
      return LineError(path, line_no, "token count too large");
    if (resp == 0) {
      ++trace.skipped;
      continue;
    }
    TraceRequest r;
    r.line = line_no;
    r.arrival_s = ts;
    r.input_len = static_cast<int32_t>(req);
    r.output_len = static_cast<int32_t>(resp);
    trace.requests.push_back(std::move(r));
  }
  if (columns.empty()) return absl::InvalidArgumentError(path + ": empty CSV (no header)");
  if (trace.requests.empty()) return absl::InvalidArgumentError(path + ": no requests in trace");
  return trace;
}

absl::StatusOr<Trace> ParseShareGpt(absl::string_view text, const std::string& path) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    return LineError(path, LineOfOffset(text, e.byte), absl::StrCat("not valid JSON: ", e.what()));
  }
  if (!doc.is_array()) return LineError(path, 1, "expected a JSON array of conversations");
  Trace trace;
  trace.skipped_why = "conversations without a human turn followed by a reply";
  for (size_t i = 0; i < doc.size(); ++i) {
    const json& entry = doc[i];
    const std::string where = absl::StrFormat("entry %d", i);
    if (!entry.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", where, " is not an object"));
    }
    auto conv = entry.find("conversations");
    if (conv == entry.end() || !conv->is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", where, " has no 'conversations' array"));
    }
    TraceRequest r;
    r.line = static_cast<int64_t>(i) + 1;
    bool have_prompt = false, have_reply = false;
    for (const json& turn : *conv) {
      if (!turn.is_object() || !turn.contains("from") || !turn.contains("value") ||
          !turn["from"].is_string() || !turn["value"].is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": ", where, ": every turn needs string fields 'from' and 'value'"));
      }
      const std::string from = turn["from"].get<std::string>();
      if (!have_prompt) {
        if (from == "human" || from == "user") {
          r.prompt = turn["value"].get<std::string>();
          have_prompt = true;
        }
      } else {
        r.reply = turn["value"].get<std::string>();
        have_reply = true;
        break;
      }
    }
    if (!have_prompt || !have_reply || r.prompt.empty() || r.reply.empty()) {
      ++trace.skipped;
      continue;
    }
    trace.requests.push_back(std::move(r));
  }
  if (trace.requests.empty()) return absl::InvalidArgumentError(path + ": no usable conversations");
  return trace;
}

absl::StatusOr<TimeWindow> ParseTimeWindow(absl::string_view spec) {
  TimeWindow w;
  std::vector<std::string> parts = absl::StrSplit(spec, ':');
  if (parts.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("--window must be START:END in seconds, got '", spec, "'"));
  }
  if (!parts[0].empty() && (!absl::SimpleAtod(parts[0], &w.start_s) || w.start_s < 0)) {
    return absl::InvalidArgumentError(absl::StrCat("--window: bad start '", parts[0], "'"));
  }
  if (!parts[1].empty() && (!absl::SimpleAtod(parts[1], &w.end_s) || w.end_s <= w.start_s)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--window: end '", parts[1], "' must be a number after the start"));
  }
  return w;
}

void ApplyWindowAndScale(const TimeWindow& window, double time_scale, Trace* trace) {
  std::vector<TraceRequest> kept;
  for (TraceRequest& r : trace->requests) {
    if (r.arrival_s >= 0) {
      if (r.arrival_s < window.start_s) continue;
      if (window.end_s >= 0 && r.arrival_s >= window.end_s) continue;
      r.arrival_s = (r.arrival_s - window.start_s) * time_scale;
    }
    kept.push_back(std::move(r));
  }
  std::stable_sort(kept.begin(), kept.end(), [](const TraceRequest& a, const TraceRequest& b) {
    return a.arrival_s < b.arrival_s;
  });
  trace->requests = std::move(kept);
}

}  // namespace restkv::bench
