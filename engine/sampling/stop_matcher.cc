#include "engine/sampling/stop_matcher.h"

#include <algorithm>
#include <utility>

namespace restkv::engine {
namespace {

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Moves `cut` back onto a character boundary of `text`: at most 3 bytes, the
// longest run of continuation bytes in well-formed UTF-8. The end of `text`
// counts as a boundary (the caller's pieces end on one).
size_t BoundaryAtOrBefore(std::string_view text, size_t cut) {
  for (int steps = 0; steps < 3 && cut > 0 && cut < text.size() && IsContinuationByte(text[cut]);
       ++steps) {
    --cut;
  }
  return cut;
}

}  // namespace

StopMatcher::StopMatcher(std::vector<std::string> stop) : stop_(std::move(stop)) {
  stop_.erase(std::remove(stop_.begin(), stop_.end(), std::string()), stop_.end());
}

StopMatcher::Result StopMatcher::Push(std::string_view new_text) {
  Result r;
  if (stopped_) {
    r.stopped = true;
    r.matched = matched_;
    return r;
  }
  if (stop_.empty()) {
    r.text.assign(new_text);
    return r;
  }
  held_.append(new_text);

  // The stop string that completes first; at the same end, the longest.
  size_t best_start = std::string::npos;
  size_t best_end = std::string::npos;
  const std::string* best = nullptr;
  for (const std::string& s : stop_) {
    const size_t pos = held_.find(s);
    if (pos == std::string::npos) continue;
    const size_t end = pos + s.size();
    if (best == nullptr || end < best_end || (end == best_end && pos < best_start)) {
      best_start = pos;
      best_end = end;
      best = &s;
    }
  }
  if (best != nullptr) {
    r.text = held_.substr(0, BoundaryAtOrBefore(held_, best_start));
    r.stopped = true;
    r.matched = *best;
    stopped_ = true;
    matched_ = *best;
    held_.clear();
    return r;
  }

  // No match, so any future match starts inside the longest suffix of held_
  // that is a proper prefix of some stop string: hold exactly that.
  size_t hold = 0;
  for (const std::string& s : stop_) {
    for (size_t len = std::min(s.size() - 1, held_.size()); len > hold; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  const size_t cut = BoundaryAtOrBefore(held_, held_.size() - hold);
  r.text = held_.substr(0, cut);
  held_.erase(0, cut);
  return r;
}

std::string StopMatcher::Flush() {
  std::string out;
  if (!stopped_) out.swap(held_);
  return out;
}

}  // namespace restkv::engine
