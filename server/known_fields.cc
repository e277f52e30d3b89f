#include "server/known_fields.h"

#include <algorithm>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace restkv::server {
namespace {

// Read by ParseGenerationFields, RejectUnsupported and ParseStructuredOutput
// for both /v1/completions and /v1/chat/completions.
constexpr std::string_view kGenerationFields[] = {
    "model", "temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty",
    "repetition_penalty", "seed", "stop", "stop_token_ids", "ignore_eos", "max_tokens", "n",
    "stream", "stream_options", "user", "priority", "kv_policy", "kv_budget", "min_tokens",
    "include_stop_str_in_output", "skip_special_tokens", "spaces_between_special_tokens",
    "logit_bias", "truncate_prompt_tokens", "best_of", "suffix", "tools",
    // structured outputs (structured_fields.cc)
    "response_format", "guided_json", "guided_regex", "guided_choice", "guided_grammar",
    "guided_decoding_backend", "guided_whitespace_pattern", "structured_outputs"};
constexpr std::string_view kCompletionOnly[] = {"prompt", "echo", "logprobs"};
constexpr std::string_view kChatOnly[] = {"messages",
                                          "max_completion_tokens",
                                          "logprobs",
                                          "top_logprobs",
                                          "add_generation_prompt",
                                          "tool_choice",
                                          "parallel_tool_calls",
                                          "functions",
                                          "function_call",
                                          "chat_template_kwargs",
                                          "continue_final_message"};
constexpr std::string_view kTokenizeFields[] = {"model",
                                                "prompt",
                                                "messages",
                                                "add_special_tokens",
                                                "add_generation_prompt",
                                                "return_token_strs"};
constexpr std::string_view kDetokenizeFields[] = {"model", "tokens"};

template <size_t N>
bool In(const std::string_view (&list)[N], std::string_view name) {
  return std::find(std::begin(list), std::end(list), name) != std::end(list);
}

bool Known(FieldSet set, std::string_view name) {
  switch (set) {
    case FieldSet::kCompletion:
      return In(kGenerationFields, name) || In(kCompletionOnly, name);
    case FieldSet::kChat:
      return In(kGenerationFields, name) || In(kChatOnly, name);
    case FieldSet::kTokenize:
      return In(kTokenizeFields, name);
    case FieldSet::kDetokenize:
      return In(kDetokenizeFields, name);
  }
  return false;
}

}  // namespace

std::vector<std::string> UnknownFields(const Json& body, FieldSet set) {
  std::vector<std::string> out;
  if (!body.is_object()) return out;
  for (const auto& [key, value] : body.items()) {
    if (!Known(set, key)) out.push_back(key);
  }
  std::sort(out.begin(), out.end());  // the body keeps the client's order
  return out;
}

int IgnoredFieldWarnings::Note(std::string_view route, const std::vector<std::string>& fields) {
  int logged = 0;
  for (const std::string& field : fields) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      // A bounded set: a client sending random names cannot grow it forever.
      if (warned_.size() >= 1024) return logged;
      if (!warned_.insert(std::string(route) + " " + field).second) continue;
    }
    log_->Info(absl::StrFormat(
        "WARNING %s: ignoring unknown request field '%s' (logged once per field name)", route,
        field.substr(0, 64)));
    ++logged;
  }
  return logged;
}

}  // namespace restkv::server
