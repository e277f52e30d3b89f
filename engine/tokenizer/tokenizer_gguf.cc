#include "engine/tokenizer/tokenizer_gguf.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "engine/tokenizer/pretokenizer.h"

namespace restkv::engine {
namespace {

absl::Status Required(const absl::Status& status, const char* key) {
  if (status.ok()) return status;
  if (absl::IsNotFound(status)) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF file has no ", key));
  }
  return status;
}

// Reads a special-token id; an id outside [0, n) leaves *id unchanged.
absl::Status ReadSpecialId(const GgufFile& file, const char* key, size_t n, int32_t* id) {
  auto value = file.GetInt(key);
  if (!value.ok()) return absl::IsNotFound(value.status()) ? absl::OkStatus() : value.status();
  const int64_t v = static_cast<int64_t>(*value);
  if (v >= 0 && static_cast<uint64_t>(v) < n) *id = static_cast<int32_t>(v);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TokenizerData> TokenizerDataFromGguf(const GgufFile& file) {
  TokenizerData d;
  {
    auto model = file.GetString("tokenizer.ggml.model");
    RESTKV_RETURN_IF_ERROR(Required(model.status(), "tokenizer.ggml.model"));
    d.model = std::string(*model);
  }
  {
    auto pre = file.GetString("tokenizer.ggml.pre");
    if (pre.ok()) {
      d.pre = std::string(*pre);
    } else if (!absl::IsNotFound(pre.status())) {
      return pre.status();
    }
  }
  {
    auto tokens = file.GetStringArray("tokenizer.ggml.tokens");
    RESTKV_RETURN_IF_ERROR(Required(tokens.status(), "tokenizer.ggml.tokens"));
    d.tokens.reserve(tokens->size());
    for (const auto& t : *tokens) d.tokens.emplace_back(std::string(t));
  }
  {
    auto types = file.GetIntArray("tokenizer.ggml.token_type");
    if (types.ok()) {
      d.token_types.assign(types->begin(), types->end());
    } else if (!absl::IsNotFound(types.status())) {
      return types.status();
    }
  }
  {
    auto scores = file.GetFloatArray("tokenizer.ggml.scores");
    if (scores.ok()) {
      d.scores.assign(scores->begin(), scores->end());
    } else if (!absl::IsNotFound(scores.status())) {
      return scores.status();  // GetFloatArray already accepts int32 scores
    }
  }
  {
    auto merges = file.GetStringArray("tokenizer.ggml.merges");
    if (merges.ok()) {
      d.merges.reserve(merges->size());
      for (const auto& m : *merges) d.merges.emplace_back(std::string(m));
    } else if (!absl::IsNotFound(merges.status())) {
      return merges.status();
    } else if (d.model == "gpt2") {
      return absl::InvalidArgumentError(
          "GGUF file has a gpt2 tokenizer but no tokenizer.ggml.merges");
    }
  }

  // Defaults by tokenizer family (llama-vocab.cpp).
  bool add_bos = false;
  bool add_space_prefix = false;
  if (d.model == "llama") {
    d.bos_id = 1;
    d.eos_id = 2;
    d.unk_id = 0;
    add_bos = true;
    add_space_prefix = true;
  } else if (d.model == "gpt2") {
    d.bos_id = 11;
    d.eos_id = 11;
    if (auto pre = PreTokenizerConfigFromName(d.pre); pre.ok()) add_bos = pre->default_add_bos;
  }
  const size_t n = d.tokens.size();
  for (int32_t* id : {&d.bos_id, &d.eos_id, &d.unk_id}) {
    if (*id >= 0 && static_cast<size_t>(*id) >= n) *id = -1;
  }
  RESTKV_RETURN_IF_ERROR(ReadSpecialId(file, "tokenizer.ggml.bos_token_id", n, &d.bos_id));
  RESTKV_RETURN_IF_ERROR(ReadSpecialId(file, "tokenizer.ggml.eos_token_id", n, &d.eos_id));
  RESTKV_RETURN_IF_ERROR(ReadSpecialId(file, "tokenizer.ggml.eot_token_id", n, &d.eot_id));
  RESTKV_RETURN_IF_ERROR(ReadSpecialId(file, "tokenizer.ggml.unknown_token_id", n, &d.unk_id));
  RESTKV_RETURN_IF_ERROR(ReadSpecialId(file, "tokenizer.ggml.padding_token_id", n, &d.pad_id));

  RESTKV_ASSIGN_OR_RETURN(d.add_bos, file.GetBoolOr("tokenizer.ggml.add_bos_token", add_bos));
  RESTKV_ASSIGN_OR_RETURN(d.add_eos, file.GetBoolOr("tokenizer.ggml.add_eos_token", false));
  RESTKV_ASSIGN_OR_RETURN(d.add_space_prefix,
                          file.GetBoolOr("tokenizer.ggml.add_space_prefix", add_space_prefix));
  RESTKV_ASSIGN_OR_RETURN(d.chat_template, file.GetStringOr("tokenizer.chat_template", ""));
  return d;
}

}  // namespace restkv::engine
