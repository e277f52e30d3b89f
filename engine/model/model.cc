#include "engine/model/model.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "engine/tokenizer/tokenizer_gguf.h"

namespace restkv::engine {

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& path,
                                                   kernels::Backend& backend,
                                                   const ModelOptions& options) {
  if (!backend.SupportsKvDtype(options.kv_dtype)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the %s backend cannot store the KV cache as %s", backend.name(),
                        kernels::KvDtypeName(options.kv_dtype)));
  }
  std::unique_ptr<Model> m(new Model(backend));
  m->path_ = path;
  RESTKV_ASSIGN_OR_RETURN(m->file_, GgufFile::Open(path));
  RESTKV_ASSIGN_OR_RETURN(m->config_, ModelConfig::FromGguf(*m->file_));
  RESTKV_ASSIGN_OR_RETURN(m->weights_, ModelWeights::Load(*m->file_, m->config_, backend));
  RESTKV_ASSIGN_OR_RETURN(TokenizerData tok_data, TokenizerDataFromGguf(*m->file_));
  const std::string chat_template = tok_data.chat_template;
  RESTKV_ASSIGN_OR_RETURN(m->tokenizer_, Tokenizer::Create(std::move(tok_data)));
  if (m->tokenizer_->vocab_size() != m->config_.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: tokenizer has %d tokens but token_embd has %d rows", path,
                        m->tokenizer_->vocab_size(), m->config_.vocab_size));
  }
  if (options.chat_format.has_value()) {
    m->chat_format_ = *options.chat_format;
  } else if (chat_template.empty()) {
    m->chat_format_ = absl::FailedPreconditionError(
        "the model file has no tokenizer.chat_template; name a chat format explicitly");
  } else {
    m->chat_format_ = DetectChatFormat(chat_template);
  }
  if (options.chat_template.has_value()) {
    absl::StatusOr<JinjaChatTemplate> t =
        JinjaChatTemplate::Create(*options.chat_template, m->tokenizer_->data());
    if (!t.ok())
      return absl::InvalidArgumentError(absl::StrCat("--chat-template: ", t.status().message()));
    m->chat_template_ = std::move(*t);
    m->chat_template_source_ = *options.chat_template;
  } else if (!options.chat_format.has_value() && !chat_template.empty()) {
    absl::StatusOr<JinjaChatTemplate> t =
        JinjaChatTemplate::Create(chat_template, m->tokenizer_->data());
    if (t.ok()) {
      m->chat_template_ = std::move(*t);
      m->chat_template_source_ = chat_template;
    } else {
      m->chat_template_warning_ = absl::StrFormat(
          "%s: the file's chat template cannot be used (%s); %s", path, t.status().message(),
          m->chat_format_.ok()
              ? absl::StrCat("falling back to the built-in '",
                             std::string(ChatFormatName(*m->chat_format_)), "' format")
              : std::string("chat requests will be refused"));
    }
  }
  m->forward_ = std::make_unique<LlamaModel>(m->config_, m->weights_, backend, options.block_size,
                                             options.kv_dtype);
  if (options.sparse_prefill.has_value()) m->forward_->set_sparse_prefill(*options.sparse_prefill);
  return m;
}

absl::StatusOr<std::string> Model::RenderChat(absl::Span<const ChatMessage> messages,
                                              bool add_generation_prompt) const {
  if (chat_template_) {
    ChatTemplateInput input;
    input.messages = ChatMessagesToValue(messages);
    input.add_generation_prompt = add_generation_prompt;
    return chat_template_->Render(input, absl::Now());
  }
  if (!chat_format_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("no chat format for %s: %s", path_, chat_format_.status().message()));
  }
  return engine::RenderChat(*chat_format_, messages, add_generation_prompt, tokenizer_->data());
}

absl::StatusOr<std::string> Model::RenderChat(const ChatTemplateInput& input) const {
  if (chat_template_) return chat_template_->Render(input, absl::Now());
  if (input.tools.is_list() && !input.tools.list().empty()) {
    return absl::InvalidArgumentError(
        "this model's chat format is a built-in one, which cannot render tools");
  }
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < input.messages.list().size(); ++i) {
    const jinja::Value& m = input.messages.list()[i];
    const jinja::Value* role = m.is_dict() ? m.dict().Find("role") : nullptr;
    const jinja::Value* content = m.is_dict() ? m.dict().Find("content") : nullptr;
    const jinja::Value* calls = m.is_dict() ? m.dict().Find("tool_calls") : nullptr;
    if (role == nullptr || !role->is_string() ||
        (content != nullptr && !content->is_string() && !content->is_none()) ||
        (calls != nullptr && calls->Truthy())) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "message %d: this model's built-in chat format renders only plain text messages", i));
    }
    messages.push_back(
        {role->string(), content != nullptr && content->is_string() ? content->string() : ""});
  }
  absl::StatusOr<std::string> text =
      RenderChat(messages, input.add_generation_prompt && !input.continue_final_message);
  if (!text.ok() || !input.continue_final_message) return text;
  RESTKV_ASSIGN_OR_RETURN(std::string final_text, FinalMessageText(input.messages));
  return CutAfterFinalMessage(std::move(*text), final_text);
}

bool Model::ChatTextHasBos(std::string_view text) const {
  if (chat_template_) {
    const std::string& bos = chat_template_->bos_text();
    return !bos.empty() && text.substr(0, bos.size()) == bos;
  }
  if (!chat_format_.ok()) return false;
  const ChatFormat f = *chat_format_;
  return f == ChatFormat::kLlama2 || f == ChatFormat::kLlama3 || f == ChatFormat::kLlama31 ||
         f == ChatFormat::kMistral;
}

}  // namespace restkv::engine
