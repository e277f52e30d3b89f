#include "engine/tokenizer/jinja_chat_template.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace restkv::engine {
namespace {

std::string TokenText(const TokenizerData& tok, int32_t id) {
  if (id >= 0 && static_cast<size_t>(id) < tok.tokens.size()) return tok.tokens[id];
  return "";
}

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view StripSpace(std::string_view s, bool left, bool right) {
  while (left && !s.empty() && IsAsciiSpace(s.front())) s.remove_prefix(1);
  while (right && !s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

absl::StatusOr<JinjaChatTemplate> JinjaChatTemplate::Create(std::string_view source,
                                                            const TokenizerData& tok) {
  absl::StatusOr<jinja::Template> t = jinja::Template::Parse(source);
  if (!t.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("chat template ", t.status().message()));
  }
  JinjaChatTemplate out;
  out.template_ = std::move(*t);
  out.bos_ = TokenText(tok, tok.bos_id);
  out.eos_ = TokenText(tok, tok.eos_id);
  return out;
}

absl::StatusOr<std::string> JinjaChatTemplate::Render(const ChatTemplateInput& input,
                                                      absl::Time now) const {
  jinja::Value context = jinja::Value::Dict();
  jinja::ValueMap& vars = context.mutable_dict();
  vars.Set("messages", input.messages);
  vars.Set("tools", input.tools);
  vars.Set("add_generation_prompt",
           jinja::Value::Bool(input.add_generation_prompt && !input.continue_final_message));
  vars.Set("bos_token", jinja::Value::String(bos_));
  vars.Set("eos_token", jinja::Value::String(eos_));
  if (input.kwargs.is_dict()) {
    for (const auto& [k, v] : input.kwargs.dict().items()) vars.Set(k, v);
  }
  jinja::RenderOptions options;
  options.now = now;
  absl::StatusOr<std::string> text = template_.Render(context, options);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("chat template ", text.status().message()));
  }
  if (!input.continue_final_message) return text;
  absl::StatusOr<std::string> final_text = FinalMessageText(input.messages);
  if (!final_text.ok()) return final_text.status();
  return CutAfterFinalMessage(std::move(*text), *final_text);
}

jinja::Value ChatMessagesToValue(absl::Span<const ChatMessage> messages) {
  jinja::ValueList out;
  for (const ChatMessage& m : messages) {
    jinja::Value d = jinja::Value::Dict();
    d.mutable_dict().Set("role", jinja::Value::String(m.role));
    d.mutable_dict().Set("content", jinja::Value::String(m.content));
    out.push_back(std::move(d));
  }
  return jinja::Value::List(std::move(out));
}

absl::StatusOr<std::string> FinalMessageText(const jinja::Value& messages) {
  if (!messages.is_list() || messages.list().empty() || !messages.list().back().is_dict()) {
    return absl::InvalidArgumentError("continue_final_message needs a final message");
  }
  const jinja::Value* content = messages.list().back().dict().Find("content");
  if (content != nullptr && content->is_string()) return content->string();
  if (content != nullptr && content->is_list()) {
    for (auto it = content->list().rbegin(); it != content->list().rend(); ++it) {
      if (!it->is_dict()) continue;
      const jinja::Value* text = it->dict().Find("text");
      if (text != nullptr && text->is_string()) return text->string();
    }
  }
  return absl::InvalidArgumentError(
      "continue_final_message is set but the final message has no text to continue");
}

absl::StatusOr<std::string> CutAfterFinalMessage(std::string rendered, std::string_view content) {
  const std::string_view stripped = StripSpace(content, true, true);
  const size_t at = rendered.rfind(stripped);
  if (stripped.empty() || at == std::string::npos) {
    return absl::InvalidArgumentError(
        "continue_final_message is set but the final message does not appear in the chat after "
        "applying the chat template");
  }
  const std::string_view lstripped = StripSpace(content, true, false);
  if (std::string_view(rendered).substr(at, lstripped.size()) == content) {
    rendered.resize(at + lstripped.size());
  } else {
    rendered.resize(at + stripped.size());
  }
  return rendered;
}

}  // namespace restkv::engine
