#include "engine/model/model.h"

#include "absl/strings/str_format.h"
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
  m->forward_ = std::make_unique<LlamaModel>(m->config_, m->weights_, backend, options.block_size,
                                             options.kv_dtype);
  if (options.sparse_prefill.has_value()) m->forward_->set_sparse_prefill(*options.sparse_prefill);
  return m;
}

absl::StatusOr<std::string> Model::RenderChat(absl::Span<const ChatMessage> messages,
                                              bool add_generation_prompt) const {
  if (!chat_format_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("no chat format for %s: %s", path_, chat_format_.status().message()));
  }
  return engine::RenderChat(*chat_format_, messages, add_generation_prompt, tokenizer_->data());
}

}  // namespace restkv::engine
