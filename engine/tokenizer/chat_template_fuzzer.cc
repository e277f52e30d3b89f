// libFuzzer target for the chat templates: a random Jinja template string,
// BOS/EOS ids and conversation (any roles, any content bytes) must never
// crash DetectChatFormat, ChatMLDefaultSystemPrompt or RenderChat, and
// RenderChat must keep chat_template.h's contract:
//   - it fails exactly for an empty conversation or a role the format does
//     not accept (and, for llama2/mistral, turns other than user, assistant,
//     user, ... after llama2's optional leading system message);
//   - ChatML and Zephyr output holds every message's content verbatim, in
//     order, and ChatML's starts with the template's default system turn
//     when the conversation has no system message first;
//   - the generation prompt ends the output when asked for (formats that
//     have one).
//
// Built and run by tests/fuzz/run_corpus_fuzzer.sh chat_template.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/chat_template.h"

namespace {

using restkv::engine::ChatFormat;
using restkv::engine::ChatMessage;
using restkv::engine::TokenizerData;

void Require(bool ok) {
  if (!ok) __builtin_trap();
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool RolesOk(ChatFormat format, const std::vector<ChatMessage>& messages) {
  if (messages.empty()) return false;
  for (const ChatMessage& m : messages) {
    const bool system_ok = format != ChatFormat::kMistral && m.role == "system";
    if (m.role != "user" && m.role != "assistant" && !system_ok) return false;
  }
  return true;
}

bool Alternates(ChatFormat format, std::vector<ChatMessage> messages) {
  if (format == ChatFormat::kLlama2 && !messages.empty() && messages.front().role == "system") {
    messages.erase(messages.begin());
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != (i % 2 == 0 ? "user" : "assistant")) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  static constexpr ChatFormat kFormats[] = {ChatFormat::kChatML,  ChatFormat::kLlama3,
                                            ChatFormat::kLlama31, ChatFormat::kLlama2,
                                            ChatFormat::kMistral, ChatFormat::kZephyr};
  const ChatFormat format = in.PickValueInArray(kFormats);
  const bool add_generation_prompt = in.ConsumeBool();

  TokenizerData tok;
  tok.tokens = {"<unk>", "<s>", "</s>", "<|begin_of_text|>", "<|eot_id|>"};
  // Ids as Tokenizer::Create leaves them: in range or -1 (none).
  tok.bos_id = in.ConsumeIntegralInRange<int32_t>(-1, 4);
  tok.eos_id = in.ConsumeIntegralInRange<int32_t>(-1, 4);
  tok.chat_template = in.ConsumeRandomLengthString(256);

  static constexpr const char* kRoles[] = {"system", "user", "assistant", "tool", ""};
  std::vector<ChatMessage> messages(in.ConsumeIntegralInRange<size_t>(0, 6));
  for (ChatMessage& m : messages) {
    m.role = in.ConsumeBool() ? in.PickValueInArray(kRoles) : in.ConsumeRandomLengthString(8);
    m.content = in.ConsumeRandomLengthString(128);
  }

  // Whatever the template text, detection answers with a format or a status.
  (void)restkv::engine::DetectChatFormat(tok.chat_template);
  const std::string default_system = restkv::engine::ChatMLDefaultSystemPrompt(tok.chat_template);

  const auto rendered = restkv::engine::RenderChat(format, messages, add_generation_prompt, tok);
  const bool alternation_needed = format == ChatFormat::kLlama2 || format == ChatFormat::kMistral;
  const bool should_render =
      RolesOk(format, messages) && (!alternation_needed || Alternates(format, messages));
  Require(rendered.ok() == should_render);
  if (!rendered.ok()) return 0;
  const std::string& out = *rendered;

  if (format == ChatFormat::kChatML || format == ChatFormat::kZephyr) {
    size_t at = 0;
    if (format == ChatFormat::kChatML && messages.front().role != "system" &&
        !default_system.empty()) {
      const std::string head = "<|im_start|>system\n" + default_system + "<|im_end|>\n";
      Require(out.compare(0, head.size(), head) == 0);
      at = head.size();
    }
    for (const ChatMessage& m : messages) {
      const size_t pos = out.find(m.content, at);
      Require(pos != std::string::npos);
      at = pos + m.content.size();
    }
  }
  if (add_generation_prompt) {
    if (format == ChatFormat::kChatML) Require(EndsWith(out, "<|im_start|>assistant\n"));
    if (format == ChatFormat::kZephyr) Require(EndsWith(out, "<|assistant|>\n"));
    if (format == ChatFormat::kLlama3 || format == ChatFormat::kLlama31) {
      Require(EndsWith(out, "<|start_header_id|>assistant<|end_header_id|>\n\n"));
    }
  }
  return 0;
}
