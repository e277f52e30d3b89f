#include "server/tool_call_stream.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/json.h"

namespace restkv::server {
namespace {

constexpr size_t kNpos = std::string_view::npos;
constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kMistralMarker = "[TOOL_CALLS]";
constexpr std::string_view kPythonTag = "<|python_tag|>";

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

size_t SkipSpace(std::string_view t, size_t i) {
  while (i < t.size() && IsSpace(t[i])) ++i;
  return i;
}

// How `t` stands against `word` at `i`: all of it is there, `t` ends inside
// it (so it may still come), or something else is written there.
enum class Match { kWhole, kPrefix, kNo };
Match MatchAt(std::string_view t, size_t i, std::string_view word) {
  const std::string_view rest = t.substr(std::min(i, t.size()));
  if (rest.size() >= word.size())
    return rest.substr(0, word.size()) == word ? Match::kWhole : Match::kNo;
  return word.substr(0, rest.size()) == rest ? Match::kPrefix : Match::kNo;
}

// What a prefix of one call object, {"name": ..., "arguments": ...}, says
// so far.
struct PartialCall {
  size_t markup = 0;  // where its markup begins (a hermes tag, else the object)
  std::optional<std::string> name;
  size_t args_begin = kNpos;  // the arguments value's first character
  size_t args_end = kNpos;    // one past it; kNpos while it is being written
  size_t end = kNpos;         // one past the closing '}'; kNpos while open
  bool bad = false;           // not a call object
};

PartialCall ScanCall(std::string_view t, size_t i, size_t markup) {
  PartialCall c;
  c.markup = markup;
  if (i >= t.size()) return c;
  if (t[i] != '{') {
    c.bad = true;
    return c;
  }
  ++i;
  while (true) {
    i = SkipSpace(t, i);
    if (i < t.size() && t[i] == ',') i = SkipSpace(t, i + 1);
    if (i >= t.size()) return c;
    if (t[i] == '}') {
      c.end = i + 1;
      return c;
    }
    if (t[i] != '"') break;
    const size_t key_end = JsonValueEnd(t, i);
    if (key_end == kNpos) return c;
    const Json key = Json::parse(t.substr(i, key_end - i), nullptr, /*allow_exceptions=*/false);
    if (!key.is_string()) break;
    i = SkipSpace(t, key_end);
    if (i >= t.size()) return c;
    if (t[i] != ':') break;
    i = SkipSpace(t, i + 1);
    if (i >= t.size()) return c;
    const std::string& k = key.get_ref<const std::string&>();
    const bool args = k == "arguments" || k == "parameters";
    if (args) c.args_begin = i;
    const size_t value_end = JsonValueEnd(t, i);
    if (value_end == kNpos) return c;
    if (args) c.args_end = value_end;
    if (k == "name") {
      const Json name = Json::parse(t.substr(i, value_end - i), nullptr, false);
      if (!name.is_string()) break;
      c.name = name.get<std::string>();
    }
    i = value_end;
  }
  c.bad = true;
  return c;
}

// The calls of a region, and where text that is not calls follows them.
struct RegionScan {
  std::vector<PartialCall> calls;
  size_t consumed = 0;  // one past the last complete call's markup
  size_t rest = kNpos;  // where other text begins; kNpos: none (yet)
};

// A list of call objects: [open] obj (sep obj)* [close].
RegionScan ScanList(std::string_view t, size_t i, char open, char sep, char close) {
  RegionScan scan;
  i = SkipSpace(t, i);
  if (open != 0) {
    if (i >= t.size()) return scan;
    if (t[i] != open) {
      scan.rest = i;
      return scan;
    }
    i = SkipSpace(t, i + 1);
  }
  while (true) {
    PartialCall call = ScanCall(t, i, i);
    const bool complete = call.end != kNpos && !call.bad;
    scan.calls.push_back(std::move(call));
    if (!complete) return scan;
    i = scan.consumed = scan.calls.back().end;
    i = SkipSpace(t, i);
    if (i >= t.size()) return scan;
    if (t[i] == sep) {
      i = SkipSpace(t, i + 1);
      continue;
    }
    if (close != 0 && t[i] == close) ++i;
    scan.consumed = i;
    scan.rest = i;
    return scan;
  }
}

// <tool_call>obj</tool_call> repeated, whitespace between.
RegionScan ScanHermes(std::string_view t, size_t i) {
  RegionScan scan;
  scan.consumed = i;
  while (true) {
    i = SkipSpace(t, i);
    if (i >= t.size()) return scan;
    const size_t markup = i;
    const Match open = MatchAt(t, i, kHermesOpen);
    if (open != Match::kWhole) {
      if (open == Match::kNo) scan.rest = i;
      return scan;
    }
    PartialCall call = ScanCall(t, SkipSpace(t, i + kHermesOpen.size()), markup);
    const bool complete = call.end != kNpos && !call.bad;
    i = call.end;
    scan.calls.push_back(std::move(call));
    if (!complete) return scan;
    i = SkipSpace(t, i);
    const Match close = MatchAt(t, i, kHermesClose);
    if (close == Match::kNo) {
      scan.consumed = i;
      scan.rest = i;
      return scan;
    }
    if (close == Match::kPrefix) return scan;
    i = scan.consumed = i + kHermesClose.size();
  }
}

// The call region of `t` as written so far.
RegionScan ScanRegion(std::string_view t, const ChatTools& tools, ToolCallFormat format,
                      size_t region) {
  if (tools.choice == ChatTools::Choice::kNamed) {
    // The output is the named function's arguments object.
    RegionScan scan;
    PartialCall call;
    call.name = tools.named;
    const size_t i = SkipSpace(t, 0);
    if (i < t.size()) {
      call.args_begin = i;
      call.args_end = call.end = JsonValueEnd(t, i);
    }
    scan.calls.push_back(std::move(call));
    return scan;
  }
  if (tools.choice == ChatTools::Choice::kRequired) return ScanList(t, 0, '[', ',', ']');
  switch (format) {
    case ToolCallFormat::kHermes:
      return ScanHermes(t, region);
    case ToolCallFormat::kMistral:
      return ScanList(t, region + kMistralMarker.size(), '[', ',', ']');
    case ToolCallFormat::kLlama3Json:
      break;
  }
  size_t i = SkipSpace(t, region);
  if (MatchAt(t, i, kPythonTag) == Match::kWhole) i += kPythonTag.size();
  return ScanList(t, i, 0, ';', 0);
}

}  // namespace

ToolCallStream::ToolCallStream(const ChatTools& tools, ToolCallFormat format, std::string id_prefix)
    : tools_(tools), format_(format), id_prefix_(std::move(id_prefix)) {
  if (tools_.constrained()) mode_ = Mode::kCalls;  // the grammar writes calls from the start
}

std::vector<ToolCallDelta> ToolCallStream::Append(std::string_view text) {
  text_.append(text);
  std::vector<ToolCallDelta> out;
  if (mode_ != Mode::kCalls) AdvanceContent(&out, /*final=*/false);
  if (mode_ == Mode::kCalls) AdvanceCalls(&out);
  return out;
}

std::vector<ToolCallDelta> ToolCallStream::Finish() {
  std::vector<ToolCallDelta> out;
  if (mode_ == Mode::kCalls) AdvanceCalls(&out);
  if (mode_ == Mode::kCalls) {
    // What was held back as a possible call is content after all: a call
    // that never got its head out, or markup after the last call. A call
    // sent and cut short stays as far as it got.
    const RegionScan scan = ScanRegion(text_, tools_, format_, region_);
    const size_t limit = tools_.parallel ? scan.calls.size() : 1;
    size_t from = kNpos;
    if (scan.calls.size() > sent_.size() && sent_.size() < limit) {
      from = scan.calls[sent_.size()].markup;
    } else if (!tools_.constrained() && (sent_.empty() || sent_.back().done)) {
      from = scan.consumed;
    }
    if (from != kNpos && SkipSpace(text_, from) < text_.size()) FallBackToContent(from, &out);
  }
  if (mode_ != Mode::kCalls) AdvanceContent(&out, /*final=*/true);
  return out;
}

void ToolCallStream::AdvanceContent(std::vector<ToolCallDelta>* out, bool final) {
  size_t end = text_.size();
  if (mode_ == Mode::kUndecided) {
    const std::string_view t = text_;
    switch (format_) {
      case ToolCallFormat::kLlama3Json: {
        // Calls come first or not at all.
        const size_t i = SkipSpace(t, 0);
        if (i < t.size() && (t[i] == '{' || MatchAt(t, i, kPythonTag) == Match::kWhole)) {
          mode_ = Mode::kCalls;
          region_ = 0;
          return;
        }
        if (!final && (i == t.size() || MatchAt(t, i, kPythonTag) == Match::kPrefix)) return;
        mode_ = Mode::kContent;
        break;
      }
      case ToolCallFormat::kHermes:
      case ToolCallFormat::kMistral: {
        const std::string_view marker =
            format_ == ToolCallFormat::kHermes ? kHermesOpen : kMistralMarker;
        const size_t at = t.find(marker, content_sent_);
        if (at != kNpos) {
          end = at;
          while (end > content_sent_ && IsSpace(t[end - 1])) --end;
          mode_ = Mode::kCalls;
          region_ = at;
          break;
        }
        if (final) break;
        // Hold back what may be the start of the marker, and the space
        // before it (the unstreamed content is trimmed before a call).
        for (size_t k = std::min(marker.size() - 1, t.size()); k > 0; --k) {
          if (t.substr(t.size() - k) == marker.substr(0, k)) {
            end = t.size() - k;
            break;
          }
        }
        while (end > content_sent_ && IsSpace(t[end - 1])) --end;
        break;
      }
    }
  }
  if (end > content_sent_) {
    ToolCallDelta d;
    d.content = text_.substr(content_sent_, end - content_sent_);
    out->push_back(std::move(d));
    content_sent_ = end;
  }
}

void ToolCallStream::AdvanceCalls(std::vector<ToolCallDelta>* out) {
  const std::string_view t = text_;
  const RegionScan scan = ScanRegion(text_, tools_, format_, region_);
  const size_t limit = tools_.parallel ? scan.calls.size() : std::min<size_t>(scan.calls.size(), 1);
  for (size_t k = 0; k < limit; ++k) {
    const PartialCall& call = scan.calls[k];
    if (k >= sent_.size()) {
      if (call.bad || (call.name && !tools_.knows(*call.name))) {
        // Not a call: the text is content from here, as the unstreamed
        // parser has it.
        FallBackToContent(call.markup, out);
        return;
      }
      if (!call.name) return;  // the head waits for the name
      ToolCallDelta head;
      head.call = static_cast<int32_t>(k);
      head.id = absl::StrCat("call_", id_prefix_, k);
      head.name = *call.name;
      out->push_back(std::move(head));
      sent_.emplace_back();
    }
    SentCall& sent = sent_[k];
    if (sent.done) continue;
    std::string args;
    if (call.args_begin == kNpos) {
      if (call.end == kNpos) return;
      args = "{}";  // a call without arguments
      sent.done = true;
    } else if (t[call.args_begin] == '"') {
      // Arguments as a JSON string: sent decoded, once complete.
      if (call.args_end == kNpos) return;
      const Json s =
          Json::parse(t.substr(call.args_begin, call.args_end - call.args_begin), nullptr, false);
      args = s.is_string() ? s.get<std::string>() : "{}";
      sent.done = true;
    } else {
      const size_t end = call.args_end == kNpos ? t.size() : call.args_end;
      args = std::string(
          t.substr(call.args_begin + sent.args_sent, end - call.args_begin - sent.args_sent));
      sent.args_sent = end - call.args_begin;
      sent.done = call.args_end != kNpos;
    }
    if (!args.empty()) {
      ToolCallDelta d;
      d.call = static_cast<int32_t>(k);
      d.arguments = std::move(args);
      out->push_back(std::move(d));
    }
    if (!sent.done) return;  // later calls wait until this one is whole
  }
  if (scan.rest != kNpos && limit == scan.calls.size() && !tools_.constrained() &&
      SkipSpace(t, scan.rest) < t.size()) {
    FallBackToContent(scan.rest, out);
  }
}

void ToolCallStream::FallBackToContent(size_t from, std::vector<ToolCallDelta>* out) {
  mode_ = Mode::kContent;
  // With no call sent, all that was held back is content.
  if (!sent_.empty()) content_sent_ = std::max(from, content_sent_);
  AdvanceContent(out, /*final=*/false);
}

}  // namespace restkv::server
