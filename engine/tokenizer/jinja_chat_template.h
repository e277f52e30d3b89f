// JinjaChatTemplate: a model's own chat template (GGUF
// tokenizer.chat_template, or a file named with --chat-template), rendered
// with the Jinja interpreter (engine/jinja/) the way transformers'
// apply_chat_template and vLLM render it.
//
// Variables the template sees: messages, tools (None when the request has
// none, as HF passes it), add_generation_prompt, bos_token and eos_token
// (the texts of the file's BOS/EOS tokens), then every member of
// chat_template_kwargs (which may override the others, as in vLLM).
// continue_final_message renders without a generation prompt and cuts the
// text right after the last message's content (HF's rule: the content
// stripped must occur in the text; trailing whitespace the template trimmed
// stays trimmed), so the model continues that message.
//
// Thread safety: immutable after Create; Render may run on several threads.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/jinja/template.h"
#include "engine/jinja/value.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"

namespace restkv::engine {

struct ChatTemplateInput {
  jinja::Value messages = jinja::Value::List();  // dicts: role, content, tool_calls, ...
  jinja::Value tools = jinja::Value::None();     // list of OpenAI tool dicts, or None
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  jinja::Value kwargs = jinja::Value::Dict();  // chat_template_kwargs
};

class JinjaChatTemplate {
 public:
  // InvalidArgument "chat template line N: ..." when the source does not parse.
  static absl::StatusOr<JinjaChatTemplate> Create(std::string_view source,
                                                  const TokenizerData& tok);

  // InvalidArgument with the template's message when it raises or fails
  // (e.g. "line 12: template raised: Conversation roles must alternate ...").
  [[nodiscard]] absl::StatusOr<std::string> Render(const ChatTemplateInput& input,
                                                   absl::Time now) const;

  [[nodiscard]] const std::string& bos_text() const { return bos_; }

 private:
  jinja::Template template_;
  std::string bos_;
  std::string eos_;
};

// Plain role/content messages as template values.
jinja::Value ChatMessagesToValue(absl::Span<const ChatMessage> messages);

// HF's continue_final_message cut of `rendered` after the final message's
// `content`; InvalidArgument when the content does not appear in it.
absl::StatusOr<std::string> CutAfterFinalMessage(std::string rendered, std::string_view content);

// The final message's text for continue_final_message: its content string,
// or the text of its last text part. InvalidArgument when there is none.
absl::StatusOr<std::string> FinalMessageText(const jinja::Value& messages);

}  // namespace restkv::engine
