#include "server/grpc_request.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace restkv::server {

namespace pb = restkv::v1;

std::vector<engine::ChatMessage> ChatFromProto(const pb::ChatMessages& chat) {
  std::vector<engine::ChatMessage> out;
  for (const pb::ChatMessage& m : chat.messages()) out.push_back({m.role(), m.content()});
  return out;
}

absl::Status ChatToolsFromProto(const pb::GenerateRequest& r, ChatRequest* chat) {
  // The same checks as the HTTP API: build the JSON body it would get.
  Json body = Json::object();
  Json messages = Json::array();
  for (const pb::ChatMessage& m : r.chat().messages()) {
    Json msg = {{"role", m.role()}, {"content", m.content()}};
    if (!m.tool_calls_json().empty()) {
      Json calls = Json::parse(m.tool_calls_json(), nullptr, false);
      if (calls.is_discarded()) {
        return absl::InvalidArgumentError("chat.messages[].tool_calls_json is not valid JSON");
      }
      msg["tool_calls"] = std::move(calls);
    }
    if (!m.tool_call_id().empty()) msg["tool_call_id"] = m.tool_call_id();
    if (!m.name().empty()) msg["name"] = m.name();
    messages.push_back(std::move(msg));
  }
  body["messages"] = std::move(messages);
  if (!r.tools_json().empty()) {
    body["tools"] = Json::parse(r.tools_json(), nullptr, false);
    if (body["tools"].is_discarded())
      return absl::InvalidArgumentError("tools_json is not valid JSON");
  }
  const std::string& choice = r.tool_choice();
  if (choice == "auto" || choice == "none" || choice == "required") {
    body["tool_choice"] = choice;
  } else if (!choice.empty()) {
    body["tool_choice"] = {{"type", "function"}, {"function", {{"name", choice}}}};
  }
  if (r.has_parallel_tool_calls()) body["parallel_tool_calls"] = r.parallel_tool_calls();
  RESTKV_ASSIGN_OR_RETURN(chat->tools, ParseChatTools(body));
  RESTKV_ASSIGN_OR_RETURN(chat->template_messages, TemplateMessages(body, chat->messages));
  if (!r.chat_template_kwargs_json().empty()) {
    Json kw = Json::parse(r.chat_template_kwargs_json(), nullptr, false);
    if (kw.is_discarded() || !kw.is_object()) {
      return absl::InvalidArgumentError("chat_template_kwargs_json must be a JSON object");
    }
    chat->chat_template_kwargs = JsonToTemplateValue(kw);
  }
  chat->continue_final_message = r.continue_final_message();
  if (chat->continue_final_message && chat->add_generation_prompt) {
    return absl::InvalidArgumentError(
        "continue_final_message needs add_generation_prompt set to false");
  }
  return absl::OkStatus();
}

GenerationFields GenerationFieldsFromProto(const pb::GenerateRequest& r) {
  GenerationFields f;
  engine::SamplingParams& p = f.params;
  if (r.has_temperature()) p.temperature = r.temperature();
  if (r.has_top_p()) p.top_p = r.top_p();
  if (r.has_top_k()) p.top_k = r.top_k();
  if (r.has_min_p()) p.min_p = r.min_p();
  if (r.has_presence_penalty()) p.presence_penalty = r.presence_penalty();
  if (r.has_frequency_penalty()) p.frequency_penalty = r.frequency_penalty();
  if (r.has_repetition_penalty()) p.repetition_penalty = r.repetition_penalty();
  if (r.has_seed()) p.seed = r.seed();
  p.stop.assign(r.stop().begin(), r.stop().end());
  p.stop_token_ids.assign(r.stop_token_ids().begin(), r.stop_token_ids().end());
  p.ignore_eos = r.ignore_eos();
  if (r.has_logprobs()) p.logprobs = r.logprobs();
  if (r.has_min_tokens()) p.min_tokens = r.min_tokens();
  p.include_stop_str_in_output = r.include_stop_str_in_output();
  if (r.has_skip_special_tokens()) p.skip_special_tokens = r.skip_special_tokens();
  if (r.has_spaces_between_special_tokens())
    p.spaces_between_special_tokens = r.spaces_between_special_tokens();
  for (const auto& [id, bias] : r.logit_bias()) {
    // Clamped as the HTTP API (and vLLM) clamp; NaN stays NaN and is refused.
    p.logit_bias.emplace_back(
        id,
        std::isnan(bias) ? bias : std::clamp(bias, -engine::kMaxLogitBias, engine::kMaxLogitBias));
  }
  std::sort(p.logit_bias.begin(), p.logit_bias.end());
  if (r.has_truncate_prompt_tokens()) f.truncate_prompt_tokens = r.truncate_prompt_tokens();
  if (r.has_max_tokens()) f.max_tokens = r.max_tokens();
  f.priority = r.priority();
  if (r.has_kv_policy()) f.kv_policy = r.kv_policy();
  if (r.has_kv_budget()) f.kv_budget = r.kv_budget();
  using engine::structured::GrammarKind;
  switch (r.structured_case()) {
    case pb::GenerateRequest::kJsonSchema:
      f.structured =
          StructuredOutput{{GrammarKind::kJsonSchema, r.json_schema(), {}}, "json_schema"};
      break;
    case pb::GenerateRequest::kJsonObject:
      if (r.json_object())
        f.structured = StructuredOutput{{GrammarKind::kJsonObject, "", {}}, "json_object"};
      break;
    case pb::GenerateRequest::kRegex:
      f.structured = StructuredOutput{{GrammarKind::kRegex, r.regex(), {}}, "regex"};
      break;
    case pb::GenerateRequest::kChoice:
      f.structured = StructuredOutput{
          {GrammarKind::kChoice, "", {r.choice().choices().begin(), r.choice().choices().end()}},
          "choice"};
      break;
    case pb::GenerateRequest::kGrammar:
      f.structured = StructuredOutput{{GrammarKind::kGbnf, r.grammar(), {}}, "grammar"};
      break;
    case pb::GenerateRequest::STRUCTURED_NOT_SET:
      break;
  }
  return f;
}

absl::Status ValidateGenerationFields(const GenerationFields& f) {
  if (f.max_tokens.has_value() && *f.max_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens must be >= 1, got ", *f.max_tokens));
  }
  if (f.params.min_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_tokens must be >= 0, got ", f.params.min_tokens));
  }
  for (const auto& [id, bias] : f.params.logit_bias) {
    if (id < 0)
      return absl::InvalidArgumentError(absl::StrCat("logit_bias: token id ", id, " < 0"));
    if (std::isnan(bias))
      return absl::InvalidArgumentError(absl::StrCat("logit_bias[", id, "] is NaN"));
  }
  if (f.truncate_prompt_tokens.has_value() &&
      (*f.truncate_prompt_tokens < -1 || *f.truncate_prompt_tokens == 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("truncate_prompt_tokens must be >= 1, or -1 for max_model_len; got ",
                     *f.truncate_prompt_tokens));
  }
  if (static_cast<int32_t>(f.params.stop.size()) > kMaxStopStrings) {
    return absl::InvalidArgumentError(absl::StrCat("at most ", kMaxStopStrings, " stop strings"));
  }
  for (const std::string& s : f.params.stop) {
    if (s.empty()) return absl::InvalidArgumentError("stop strings must be non-empty");
  }
  return absl::OkStatus();
}

absl::StatusOr<GenerationPlan> PlanGrpcGenerate(const pb::GenerateRequest& r,
                                                const PlanContext& ctx) {
  GenerationFields fields = GenerationFieldsFromProto(r);
  RESTKV_RETURN_IF_ERROR(ValidateGenerationFields(fields));
  switch (r.input_case()) {
    case pb::GenerateRequest::kChat: {
      ChatRequest chat;
      chat.messages = ChatFromProto(r.chat());
      if (chat.messages.empty())
        return absl::InvalidArgumentError("chat.messages must not be empty");
      chat.add_generation_prompt = !r.has_add_generation_prompt() || r.add_generation_prompt();
      RESTKV_RETURN_IF_ERROR(ChatToolsFromProto(r, &chat));
      chat.logprobs = fields.params.logprobs >= 0;
      chat.top_logprobs = std::max(0, fields.params.logprobs);
      chat.gen = std::move(fields);
      return PlanChat(chat, ctx);
    }
    case pb::GenerateRequest::kText:
    case pb::GenerateRequest::kTokenIds: {
      CompletionRequest completion;
      PromptInput prompt;
      if (r.input_case() == pb::GenerateRequest::kText) {
        prompt.text = r.text();
      } else {
        prompt.is_tokens = true;
        prompt.tokens.assign(r.token_ids().ids().begin(), r.token_ids().ids().end());
      }
      completion.prompts.push_back(std::move(prompt));
      completion.logprobs = fields.params.logprobs;
      completion.gen = std::move(fields);
      return PlanCompletion(completion, ctx);
    }
    default:
      return absl::InvalidArgumentError("one of text, token_ids or chat is required");
  }
}

}  // namespace restkv::server
