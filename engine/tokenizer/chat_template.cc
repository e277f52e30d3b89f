#include "engine/tokenizer/chat_template.h"

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/tokenizer/utf8.h"

namespace restkv::engine {
namespace {

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// Python's str.isspace(), which Jinja's |trim and str.strip() use.
bool IsPythonSpace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Python's str.strip() on UTF-8 text.
std::string Strip(std::string_view s) {
  const std::vector<uint32_t> cpts = DecodeUtf8Lenient(s);
  size_t first = 0, last = cpts.size();
  while (first < last && IsPythonSpace(cpts[first])) ++first;
  while (last > first && IsPythonSpace(cpts[last - 1])) --last;
  if (first == 0 && last == cpts.size()) return std::string(s);
  std::string out;
  for (size_t i = first; i < last; ++i) AppendUtf8(cpts[i], &out);
  return out;
}

std::string TokenText(const TokenizerData& tok, int32_t id, std::string_view fallback) {
  if (id >= 0 && static_cast<size_t>(id) < tok.tokens.size()) return tok.tokens[id];
  return std::string(fallback);
}

absl::Status CheckRoles(absl::Span<const ChatMessage> messages, bool allow_system) {
  if (messages.empty()) return absl::InvalidArgumentError("chat conversation has no messages");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role == "user" || role == "assistant" || (role == "system" && allow_system)) continue;
    return absl::InvalidArgumentError(
        absl::StrCat("message ", i, " has role '", role, "'; this chat format accepts ",
                     allow_system ? "system, user and assistant" : "only user and assistant"));
  }
  return absl::OkStatus();
}

// Turns must go user, assistant, user, ... (llama2 and mistral templates
// raise "Conversation roles must alternate" otherwise).
absl::Status CheckAlternation(absl::Span<const ChatMessage> turns) {
  for (size_t i = 0; i < turns.size(); ++i) {
    const bool want_user = i % 2 == 0;
    if ((turns[i].role == "user") != want_user) {
      return absl::InvalidArgumentError(
          absl::StrCat("conversation roles must alternate user/assistant/user/...; message ", i,
                       " is '", turns[i].role, "'"));
    }
  }
  return absl::OkStatus();
}

std::string RenderChatML(absl::Span<const ChatMessage> messages, bool add_generation_prompt,
                         const TokenizerData& tok) {
  std::string out;
  if (messages.front().role != "system") {
    const std::string default_system = ChatMLDefaultSystemPrompt(tok.chat_template);
    if (!default_system.empty()) {
      absl::StrAppend(&out, "<|im_start|>system\n", default_system, "<|im_end|>\n");
    }
  }
  for (const ChatMessage& m : messages) {
    absl::StrAppend(&out, "<|im_start|>", m.role, "\n", m.content, "<|im_end|>\n");
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

void AppendLlama3Turn(std::string_view role, std::string_view content, std::string* out) {
  absl::StrAppend(out, "<|start_header_id|>", Sv(role), "<|end_header_id|>\n\n", Strip(content),
                  "<|eot_id|>");
}

std::string RenderLlama3(absl::Span<const ChatMessage> messages, bool add_generation_prompt,
                         const TokenizerData& tok, bool knowledge_cutoff_block) {
  std::string out = TokenText(tok, tok.bos_id, "<|begin_of_text|>");
  if (knowledge_cutoff_block) {
    // Llama 3.1/3.2: a system turn always comes first, with the dates the
    // official template writes when no date_string is passed in.
    std::string system;
    if (messages.front().role == "system") {
      system = Strip(messages.front().content);
      messages.remove_prefix(1);
    }
    absl::StrAppend(&out, "<|start_header_id|>system<|end_header_id|>\n\n",
                    "Cutting Knowledge Date: December 2023\n", "Today Date: 26 Jul 2024\n\n",
                    system, "<|eot_id|>");
  }
  for (const ChatMessage& m : messages) AppendLlama3Turn(m.role, m.content, &out);
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

absl::StatusOr<std::string> RenderLlama2(absl::Span<const ChatMessage> messages,
                                         const TokenizerData& tok) {
  const std::string bos = TokenText(tok, tok.bos_id, "<s>");
  const std::string eos = TokenText(tok, tok.eos_id, "</s>");
  const ChatMessage* system = nullptr;
  if (messages.front().role == "system") {
    system = &messages.front();
    messages.remove_prefix(1);
  }
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      return absl::InvalidArgumentError("llama2 format accepts a system message only first");
    }
  }
  if (auto s = CheckAlternation(messages); !s.ok()) return s;
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    std::string content = messages[i].content;
    if (i == 0 && system != nullptr) {
      content = absl::StrCat("<<SYS>>\n", system->content, "\n<</SYS>>\n\n", content);
    }
    if (messages[i].role == "user") {
      absl::StrAppend(&out, bos, "[INST] ", Strip(content), " [/INST]");
    } else {
      absl::StrAppend(&out, " ", Strip(content), " ", eos);
    }
  }
  return out;
}

absl::StatusOr<std::string> RenderMistral(absl::Span<const ChatMessage> messages,
                                          const TokenizerData& tok) {
  if (auto s = CheckAlternation(messages); !s.ok()) return s;
  std::string out = TokenText(tok, tok.bos_id, "<s>");
  const std::string eos = TokenText(tok, tok.eos_id, "</s>");
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      absl::StrAppend(&out, "[INST] ", m.content, " [/INST]");
    } else {
      absl::StrAppend(&out, m.content, eos);
    }
  }
  return out;
}

std::string RenderZephyr(absl::Span<const ChatMessage> messages, bool add_generation_prompt,
                         const TokenizerData& tok) {
  const std::string eos = TokenText(tok, tok.eos_id, "</s>");
  std::string out;
  for (const ChatMessage& m : messages) {
    absl::StrAppend(&out, "<|", m.role, "|>\n", m.content, eos, "\n");
  }
  if (add_generation_prompt) out += "<|assistant|>\n";
  return out;
}

}  // namespace

std::string ChatMLDefaultSystemPrompt(std::string_view tmpl) {
  static constexpr std::string_view kHead = "<|im_start|>system";
  static constexpr std::string_view kEnd = "<|im_end|>";
  for (size_t at = tmpl.find(kHead); at != std::string_view::npos; at = tmpl.find(kHead, at + 1)) {
    size_t pos = at + kHead.size();
    // The newline after the role is a raw newline or a "\n" escape in the
    // Jinja string literal.
    if (tmpl.substr(pos, 1) == "\n") {
      pos += 1;
    } else if (tmpl.substr(pos, 2) == "\\n") {
      pos += 2;
    } else {
      continue;
    }
    // Read the literal up to <|im_end|>; a quote before it means the text is
    // not one literal (e.g. "+ message['content'] +"), so this is no default.
    std::string text;
    bool literal = true;
    while (pos < tmpl.size() && tmpl.substr(pos, kEnd.size()) != kEnd) {
      const char c = tmpl[pos];
      if (c == '\'' || c == '"' || c == '{' || c == '}') {
        literal = false;
        break;
      }
      if (c == '\\' && pos + 1 < tmpl.size()) {
        const char e = tmpl[pos + 1];
        text.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e);
        pos += 2;
        continue;
      }
      text.push_back(c);
      ++pos;
    }
    if (literal && pos < tmpl.size() && !text.empty()) return text;
  }
  return "";
}

absl::StatusOr<ChatFormat> DetectChatFormat(std::string_view t) {
  if (t.empty()) {
    return absl::NotFoundError("the model has no chat template (tokenizer.chat_template)");
  }
  if (Contains(t, "<|im_start|>")) return ChatFormat::kChatML;
  if (Contains(t, "<|start_header_id|>") && Contains(t, "<|end_header_id|>")) {
    return Contains(t, "Cutting Knowledge Date") ? ChatFormat::kLlama31 : ChatFormat::kLlama3;
  }
  if (Contains(t, "[INST]")) {
    if (Contains(t, "<<SYS>>")) return ChatFormat::kLlama2;
    if (Contains(t, " [/INST]")) return ChatFormat::kMistral;
    return absl::InvalidArgumentError(
        "chat template uses [INST] in a Mistral variant that is not supported (no space before "
        "[/INST]); choose a chat format explicitly");
  }
  if (Contains(t, "<|user|>") && Contains(t, "<|assistant|>") && !Contains(t, "<|end|>")) {
    return ChatFormat::kZephyr;
  }
  return absl::InvalidArgumentError(
      "chat template is not one of the supported families (chatml, llama3, llama31, llama2, "
      "mistral, zephyr); choose a chat format explicitly");
}

absl::StatusOr<ChatFormat> ParseChatFormatName(std::string_view name) {
  for (const ChatFormat f : {ChatFormat::kChatML, ChatFormat::kLlama3, ChatFormat::kLlama31,
                             ChatFormat::kLlama2, ChatFormat::kMistral, ChatFormat::kZephyr}) {
    if (ChatFormatName(f) == name) return f;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown chat format '", Sv(name),
                   "'; expected chatml, llama3, llama31, llama2, mistral or zephyr"));
}

std::string_view ChatFormatName(ChatFormat format) {
  switch (format) {
    case ChatFormat::kChatML:
      return "chatml";
    case ChatFormat::kLlama3:
      return "llama3";
    case ChatFormat::kLlama31:
      return "llama31";
    case ChatFormat::kLlama2:
      return "llama2";
    case ChatFormat::kMistral:
      return "mistral";
    case ChatFormat::kZephyr:
      return "zephyr";
  }
  return "unknown";
}

absl::StatusOr<std::string> RenderChat(ChatFormat format, absl::Span<const ChatMessage> messages,
                                       bool add_generation_prompt, const TokenizerData& tok) {
  if (auto s = CheckRoles(messages, /*allow_system=*/format != ChatFormat::kMistral); !s.ok()) {
    return s;
  }
  switch (format) {
    case ChatFormat::kChatML:
      return RenderChatML(messages, add_generation_prompt, tok);
    case ChatFormat::kLlama3:
      return RenderLlama3(messages, add_generation_prompt, tok, false);
    case ChatFormat::kLlama31:
      return RenderLlama3(messages, add_generation_prompt, tok, true);
    case ChatFormat::kLlama2:
      return RenderLlama2(messages, tok);
    case ChatFormat::kMistral:
      return RenderMistral(messages, tok);
    case ChatFormat::kZephyr:
      return RenderZephyr(messages, add_generation_prompt, tok);
  }
  return absl::InvalidArgumentError("unknown chat format");
}

}  // namespace restkv::engine
