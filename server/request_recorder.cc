#include "server/request_recorder.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace restkv::server {
namespace {

// FNV-1a over the previous hash and the block's token ids: cheap, stable
// across runs and builds (unlike std::hash), good enough to tell blocks apart.
uint64_t HashBlock(uint64_t previous, const int32_t* tokens, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 0x100000001b3ULL;
    }
  };
  mix(previous);
  for (size_t i = 0; i < n; ++i) mix(static_cast<uint32_t>(tokens[i]));
  mix(n);
  return h;
}

}  // namespace

std::vector<uint64_t> ChainedBlockHashes(const std::vector<int32_t>& tokens) {
  std::vector<uint64_t> out;
  uint64_t previous = 0;
  for (size_t start = 0; start < tokens.size(); start += kRecordBlockTokens) {
    const size_t n = std::min<size_t>(kRecordBlockTokens, tokens.size() - start);
    previous = HashBlock(previous, tokens.data() + start, n);
    out.push_back(previous);
  }
  return out;
}

RequestRecorder::RequestRecorder(const std::string& path, RequestLogger* log, size_t max_queue)
    : start_(std::chrono::steady_clock::now()), log_(log), max_queue_(max_queue) {
  file_ = std::fopen(path.c_str(), "w");
  if (file_ == nullptr) {
    log_->Info(absl::StrFormat("--record-requests: cannot open %s (%s); not recording", path,
                               std::strerror(errno)));
    return;
  }
  active_ = true;
  writer_ = std::thread([this] { WriterLoop(); });
  log_->Info(absl::StrFormat("recording requests (Mooncake trace format) to %s", path));
}

RequestRecorder::~RequestRecorder() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (file_ != nullptr) std::fclose(file_);
}

void RequestRecorder::Record(RecordedRequest entry) {
  if (!active_) {
    ++dropped_;
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= max_queue_) {
      ++dropped_;
      return;
    }
    queue_.push_back(std::move(entry));
  }
  cv_.notify_one();
}

std::string RequestRecorder::FormatLine(const RecordedRequest& r) {
  nlohmann::json ids = nlohmann::json::array();
  for (uint64_t h : r.block_hashes) {
    auto [it, inserted] = ids_.try_emplace(h, static_cast<int64_t>(ids_.size()));
    ids.push_back(it->second);
  }
  const double ts = std::chrono::duration<double, std::milli>(r.arrival - start_).count();
  nlohmann::json j = {
      {"timestamp", std::round(std::max(0.0, ts) * 1000.0) / 1000.0},
      {"input_length", r.input_length},
      {"output_length", r.output_length},
      {"hash_ids", std::move(ids)},
      {"endpoint", r.endpoint},
      {"n", r.n},
      {"stream", r.stream},
      {"temperature", r.temperature},
      {"top_p", r.top_p},
      {"top_k", r.top_k},
      {"max_tokens", r.max_tokens},
      {"ignore_eos", r.ignore_eos},
      {"kv_policy", r.kv_policy},
      {"kv_budget", r.kv_budget},
      {"status", r.http_status},
      {"finish", r.finish},
      {"ttft_ms", std::round(r.ttft_ms * 1000.0) / 1000.0},
      {"e2e_ms", std::round(r.e2e_ms * 1000.0) / 1000.0},
  };
  if (!r.request_id.empty()) j["request_id"] = r.request_id;
  return j.dump() + "\n";
}

void RequestRecorder::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty() && stopping_) return;
    std::deque<RecordedRequest> batch;
    batch.swap(queue_);
    lock.unlock();
    if (active_) {
      std::string text;
      for (const RecordedRequest& r : batch) text += FormatLine(r);
      const size_t wrote = std::fwrite(text.data(), 1, text.size(), file_);
      const bool failed = wrote != text.size() || std::fflush(file_) != 0;
      if (failed) {
        active_ = false;  // once: later entries are dropped at Record()
        dropped_ += static_cast<int64_t>(batch.size());
        log_->Info(absl::StrFormat(
            "--record-requests: writing failed (%s); recording stopped after %d requests",
            std::strerror(errno), written_.load()));
      } else {
        written_ += static_cast<int64_t>(batch.size());
      }
    } else {
      dropped_ += static_cast<int64_t>(batch.size());
    }
    lock.lock();
  }
}

}  // namespace restkv::server
