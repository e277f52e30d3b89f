// Model: everything loaded from one GGUF file — the mapping, config,
// weights on a backend, tokenizer and chat format — plus the forward pass.
//
// Ownership: Model owns the GgufFile (whose mapping the weights may point
// into) and everything derived from it; the Backend is the caller's and must
// outlive the Model.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "engine/gguf/gguf_file.h"
#include "engine/model/llama_model.h"
#include "engine/model/model_config.h"
#include "engine/model/model_weights.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/jinja_chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "kernels/backend.h"

namespace restkv::engine {

struct ModelOptions {
  int32_t block_size = 16;
  // Element type of the KV pages (kernels/kv_dtype.h). Load fails with
  // InvalidArgument when the backend has no such pages.
  kernels::KvDtype kv_dtype = kernels::KvDtype::kF32;
  // A built-in chat format to use instead of the file's own template.
  std::optional<ChatFormat> chat_format;
  // Block-sparse prefill attention (kernels::SparsePrefill; the CPU backend
  // honours it, others compute dense): applied to a prompt prefilled whole
  // from position 0 and longer than its dense tail.
  std::optional<kernels::SparsePrefill> sparse_prefill;
  // A Jinja chat template (source text) to use instead of the file's own;
  // one that does not parse fails Load.
  std::optional<std::string> chat_template;
};

class Model {
 public:
  // Errors: those of GgufFile::Open, ModelConfig::FromGguf, ModelWeights::Load
  // and Tokenizer::Create, each naming the file.
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& path,
                                                     kernels::Backend& backend,
                                                     const ModelOptions& options = {});

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] const GgufFile& file() const { return *file_; }
  [[nodiscard]] const ModelConfig& config() const { return config_; }
  [[nodiscard]] const Tokenizer& tokenizer() const { return *tokenizer_; }
  // The built-in chat format (detected from the template's markers or
  // named in the options), or the reason there is none.
  [[nodiscard]] const absl::StatusOr<ChatFormat>& chat_format() const { return chat_format_; }
  // The Jinja template chats render with: the --chat-template override, else
  // the file's own; null when a built-in format is used instead (named in
  // the options, the file has no template, or its template does not parse).
  [[nodiscard]] const JinjaChatTemplate* chat_template() const {
    return chat_template_ ? &*chat_template_ : nullptr;
  }
  // The Jinja source in use ("" when none), e.g. to choose a tool-call format.
  [[nodiscard]] const std::string& chat_template_source() const { return chat_template_source_; }
  // Why the file's template is not used, for a start-up warning ("" when it is).
  [[nodiscard]] const std::string& chat_template_warning() const { return chat_template_warning_; }
  // Whether chats can be rendered at all.
  [[nodiscard]] bool has_chat_template() const { return chat_template_ || chat_format_.ok(); }
  // Whether a rendered chat text already starts with BOS (so tokenizing it
  // must not add another).
  [[nodiscard]] bool ChatTextHasBos(std::string_view text) const;
  [[nodiscard]] const ModelWeights& weights() const { return weights_; }
  LlamaModel& forward() { return *forward_; }
  const LlamaModel& forward() const { return *forward_; }
  kernels::Backend& backend() { return backend_; }

  // Renders a conversation with the model's chat format.
  // Errors: FailedPrecondition when the model has no known chat format;
  // InvalidArgument from RenderChat.
  absl::StatusOr<std::string> RenderChat(absl::Span<const ChatMessage> messages,
                                         bool add_generation_prompt) const;
  // Renders a full chat request (tools, tool calls, chat_template_kwargs,
  // continue_final_message) with the Jinja template; with a built-in format
  // only plain role/content string messages without tools can be rendered
  // (InvalidArgument otherwise). strftime_now reads the current time.
  absl::StatusOr<std::string> RenderChat(const ChatTemplateInput& input) const;

 private:
  explicit Model(kernels::Backend& backend) : backend_(backend) {}

  kernels::Backend& backend_;
  std::string path_;
  std::unique_ptr<GgufFile> file_;
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
  absl::StatusOr<ChatFormat> chat_format_ = absl::UnknownError("not loaded");
  std::optional<JinjaChatTemplate> chat_template_;
  std::string chat_template_source_;
  std::string chat_template_warning_;
  std::unique_ptr<LlamaModel> forward_;
};

}  // namespace restkv::engine
