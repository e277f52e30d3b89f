#include "bench/workload.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "nlohmann/json.hpp"

namespace restkv::bench {
namespace {

int32_t Estimate(const std::string& text, const TokenCounter* count) {
  if (count != nullptr) {
    absl::StatusOr<int32_t> n = (*count)(text);
    if (n.ok()) return *n;
  }
  return std::max<int32_t>(1, static_cast<int32_t>(text.size() / 4));
}

}  // namespace

std::vector<TraceRequest> SyntheticRequests(const SyntheticOptions& o) {
  std::mt19937_64 rng(o.seed ^ 0x5eed5eedULL);
  auto draw = [&](int32_t len) {
    if (o.range_ratio <= 0) return std::max<int32_t>(1, len);
    const double lo = std::max(1.0, std::floor(len * (1 - o.range_ratio)));
    const double hi = std::max(lo, std::ceil(len * (1 + o.range_ratio)));
    std::uniform_int_distribution<int64_t> d(static_cast<int64_t>(lo), static_cast<int64_t>(hi));
    return static_cast<int32_t>(d(rng));
  };
  std::vector<TraceRequest> out;
  for (int64_t i = 0; i < o.count; ++i) {
    TraceRequest r;
    r.input_len = draw(o.input_len);
    r.output_len = draw(o.output_len);
    r.line = i + 1;
    out.push_back(std::move(r));
  }
  return out;
}

std::string RequestBody(const WorkloadOptions& o, const std::string& prompt, int32_t max_tokens) {
  nlohmann::json body = {
      {"model", o.model},
      {"stream", true},
      {"stream_options", {{"include_usage", true}}},
      {"max_tokens", std::max(1, max_tokens)},
      {"temperature", o.temperature},
  };
  if (o.ignore_eos) body["ignore_eos"] = true;
  if (o.chat) {
    body["messages"] = nlohmann::json::array({{{"role", "user"}, {"content", prompt}}});
  } else {
    body["prompt"] = prompt;
  }
  return body.dump();
}

Workload BuildWorkload(const std::vector<TraceRequest>& requests, const PromptBuilder& builder,
                       const WorkloadOptions& o, const TokenCounter* count) {
  Workload w;
  const int32_t margin = o.chat ? 64 : 8;  // BOS, chat template
  for (size_t i = 0; i < requests.size(); ++i) {
    const TraceRequest& r = requests[i];
    int32_t input = r.input_len, output = r.output_len;
    const bool text_prompt = !r.prompt.empty();
    if (text_prompt) {
      input = Estimate(r.prompt, count);
      output = Estimate(r.reply, count);
    }
    output = std::max(1, output);
    const int32_t L = o.max_model_len;
    if (L > 0 && int64_t{input} + output + margin > L) {
      if (o.skip_long || text_prompt) {
        ++w.skipped_long;
        continue;
      }
      output = std::min(output, L / 2);
      input = std::min(input, L - output - margin);
      if (input < 1) {
        ++w.skipped_long;
        continue;
      }
      ++w.clamped;
    }
    WorkItem item;
    item.arrival_s = std::max(0.0, r.arrival_s);
    item.input_tokens = input;
    item.output_tokens = output;
    item.prompt =
        text_prompt ? r.prompt : builder.Build(input, r.hash_ids, static_cast<int64_t>(i));
    if (!o.grpc) item.body = RequestBody(o, item.prompt, output);
    w.items.push_back(std::move(item));
  }
  return w;
}

}  // namespace restkv::bench
