// ToolCallStream: a streamed chat's output with tools, turned into
// OpenAI's deltas as the text arrives.
//
// Fed the generated text piece by piece, it says what may be sent now:
// content, a tool call's head (index, id, name; sent once the name is
// complete and names a known tool) and the call's arguments as they are
// written, character for character as the model writes them. Where a call
// starts depends on the output's shape:
//   named tool_choice   the whole output is the arguments object
//   required            a JSON array of {"name", "parameters"} objects
//   hermes              content, then <tool_call>{...}</tool_call>, ...
//   llama3_json         [<|python_tag|>]{...}; {...}   (or all content)
//   mistral             content, then [TOOL_CALLS][{...}, ...]
// A text that may still become a marker is held back, never sent as
// content and then taken back. A call that names an unknown function, or is
// not an object, turns the text from its start on into content, as
// ParseToolCalls does for the unstreamed answer. Arguments given as a JSON
// string (`"arguments": "{\"a\": 1}"`) go out decoded, in one piece, once
// the string is complete. With parallel_tool_calls false only the first
// call is sent.
//
// What is sent cannot be taken back: a call cut short by the length limit
// stays as far as it got (finish_reason "length" tells the client so).
//
// Thread safety: a plain value; one per streamed choice.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/chat_tools.h"

namespace restkv::server {

struct ToolCallDelta {
  // call < 0: `content` is content. Otherwise a delta of tool call `call`:
  // its first carries `id` and `name` (with empty arguments), later ones
  // `arguments` text to append.
  int32_t call = -1;
  std::string content;
  std::string id;
  std::string name;
  std::string arguments;
};

class ToolCallStream {
 public:
  // REQUIRES: tools.active().
  ToolCallStream(const ChatTools& tools, ToolCallFormat format, std::string id_prefix);

  // Appends generated text; returns what it makes safe to send, in order.
  std::vector<ToolCallDelta> Append(std::string_view text);
  // The generation ended: whatever was held back that is not a call.
  std::vector<ToolCallDelta> Finish();

  // Tool calls whose head went out (finish_reason "tool_calls" when > 0).
  [[nodiscard]] int32_t calls_sent() const { return static_cast<int32_t>(sent_.size()); }

 private:
  enum class Mode { kUndecided, kContent, kCalls };
  struct SentCall {
    size_t args_sent = 0;  // characters of the arguments' text sent
    bool done = false;     // the arguments went out whole
  };

  // Sends the content before the call region (or all of it) as far as it
  // cannot be the start of a marker.
  void AdvanceContent(std::vector<ToolCallDelta>* out, bool final);
  // Rescans the call region and sends what is new in it.
  void AdvanceCalls(std::vector<ToolCallDelta>* out);
  // The call region is not calls after all: from `from` on, all is content.
  void FallBackToContent(size_t from, std::vector<ToolCallDelta>* out);

  const ChatTools& tools_;
  const ToolCallFormat format_;
  const std::string id_prefix_;
  std::string text_;
  Mode mode_ = Mode::kUndecided;
  size_t content_sent_ = 0;  // text_[0, content_sent_) went out as content
  size_t region_ = 0;        // kCalls: where the calls' markup begins
  std::vector<SentCall> sent_;
};

}  // namespace restkv::server
