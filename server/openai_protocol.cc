#include "server/openai_protocol.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "server/api_error.h"
#include "server/json_fields.h"
#include "server/structured_fields.h"

namespace restkv::server {
namespace {

using json = Json;

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();

// Fields OpenAI defines that restkv cannot honour: refusing them beats
// silently returning something else.
absl::Status RejectUnsupported(const json& body) {
  if (const json* v = Field(body, "best_of"); v != nullptr) {
    RESTKV_ASSIGN_OR_RETURN(int64_t best_of, AsInt(*v, "best_of", 1, kMaxChoices));
    if (best_of != 1) return InvalidParam("best_of", "'best_of' > 1 is not supported");
  }
  if (const json* v = Field(body, "suffix"); v != nullptr) {
    if (!v->is_string()) return WrongType("suffix", "a string", *v);
    if (!v->get<std::string>().empty()) return InvalidParam("suffix", "'suffix' is not supported");
  }
  return absl::OkStatus();
}

absl::Status ParseStop(const json& body, std::vector<std::string>* stop) {
  const json* v = Field(body, "stop");
  if (v == nullptr) return absl::OkStatus();
  if (v->is_string()) {
    if (v->get<std::string>().empty()) return InvalidParam("stop", "'stop' must not be empty");
    stop->push_back(v->get<std::string>());
    return absl::OkStatus();
  }
  if (!v->is_array()) return WrongType("stop", "a string or an array of strings", *v);
  if (v->size() > static_cast<size_t>(kMaxStopStrings)) {
    return InvalidParam("stop", absl::StrFormat("'stop' may hold at most %d strings, got %d",
                                                kMaxStopStrings, v->size()));
  }
  for (size_t i = 0; i < v->size(); ++i) {
    const std::string param = absl::StrFormat("stop[%d]", i);
    if (!(*v)[i].is_string()) return WrongType(param, "a string", (*v)[i]);
    if ((*v)[i].get<std::string>().empty()) {
      return InvalidParam(param, absl::StrFormat("'%s' must not be empty", param));
    }
    stop->push_back((*v)[i].get<std::string>());
  }
  return absl::OkStatus();
}

// logit_bias: {"<token id>": bias}; biases clamped to [-100, 100] as vLLM
// (and OpenAI's documented range) do. The vocabulary check is the plan's.
absl::Status ParseLogitBias(const json& body, std::vector<std::pair<int32_t, float>>* out) {
  const json* v = Field(body, "logit_bias");
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_object()) return WrongType("logit_bias", "an object of token id -> bias", *v);
  for (const auto& [key, value] : v->items()) {
    const std::string param = absl::StrCat("logit_bias[", key, "]");
    int64_t id = -1;
    if (key.empty() || key.size() > 10 ||
        key.find_first_not_of("0123456789") != std::string::npos || !absl::SimpleAtoi(key, &id) ||
        id > kInt32Max) {
      return InvalidParam("logit_bias",
                          absl::StrFormat("'logit_bias' keys must be token ids (non-negative "
                                          "integers as strings), got '%s'",
                                          key));
    }
    if (!value.is_number()) return WrongType(param, "a number", value);
    const double bias = value.get<double>();
    if (!std::isfinite(bias))
      return InvalidParam(param, absl::StrFormat("'%s' must be finite", param));
    const float clamped =
        static_cast<float>(std::clamp(bias, -static_cast<double>(engine::kMaxLogitBias),
                                      static_cast<double>(engine::kMaxLogitBias)));
    out->emplace_back(static_cast<int32_t>(id), clamped);
  }
  std::sort(out->begin(), out->end());
  return absl::OkStatus();
}

absl::Status ParseModel(const json& body, std::string* model) {
  return GetString(body, "model", model);
}

// Fields shared by completions and chat.
absl::StatusOr<GenerationFields> ParseGenerationFields(const json& body) {
  RESTKV_RETURN_IF_ERROR(RejectUnsupported(body));
  GenerationFields g;
  engine::SamplingParams& p = g.params;
  RESTKV_RETURN_IF_ERROR(GetFloat(body, "temperature", 0, 2, false, &p.temperature));
  RESTKV_RETURN_IF_ERROR(GetFloat(body, "top_p", 0, 1, true, &p.top_p));
  RESTKV_RETURN_IF_ERROR(GetInt32(body, "top_k", -1, kInt32Max, &p.top_k));
  RESTKV_RETURN_IF_ERROR(GetFloat(body, "min_p", 0, 1, false, &p.min_p));
  RESTKV_RETURN_IF_ERROR(GetFloat(body, "presence_penalty", -2, 2, false, &p.presence_penalty));
  RESTKV_RETURN_IF_ERROR(GetFloat(body, "frequency_penalty", -2, 2, false, &p.frequency_penalty));
  RESTKV_RETURN_IF_ERROR(GetFloat(body, "repetition_penalty", 0, 1e6, true, &p.repetition_penalty));
  if (const json* v = Field(body, "seed"); v != nullptr) {
    RESTKV_ASSIGN_OR_RETURN(int64_t seed, AsInt(*v, "seed", std::numeric_limits<int64_t>::min(),
                                                std::numeric_limits<int64_t>::max()));
    p.seed = static_cast<uint64_t>(seed);
  }
  RESTKV_RETURN_IF_ERROR(ParseStop(body, &p.stop));
  if (const json* v = Field(body, "stop_token_ids"); v != nullptr) {
    RESTKV_ASSIGN_OR_RETURN(p.stop_token_ids, AsTokenIds(*v, "stop_token_ids"));
  }
  RESTKV_RETURN_IF_ERROR(GetBool(body, "ignore_eos", &p.ignore_eos));
  RESTKV_RETURN_IF_ERROR(GetInt32(body, "min_tokens", 0, kInt32Max, &p.min_tokens));
  RESTKV_RETURN_IF_ERROR(
      GetBool(body, "include_stop_str_in_output", &p.include_stop_str_in_output));
  RESTKV_RETURN_IF_ERROR(GetBool(body, "skip_special_tokens", &p.skip_special_tokens));
  RESTKV_RETURN_IF_ERROR(
      GetBool(body, "spaces_between_special_tokens", &p.spaces_between_special_tokens));
  RESTKV_RETURN_IF_ERROR(ParseLogitBias(body, &p.logit_bias));
  if (const json* v = Field(body, "truncate_prompt_tokens"); v != nullptr) {
    RESTKV_ASSIGN_OR_RETURN(int64_t n, AsInt(*v, "truncate_prompt_tokens", -1, kInt32Max));
    if (n == 0) {
      return InvalidParam("truncate_prompt_tokens",
                          "'truncate_prompt_tokens' must be >= 1, or -1 for max_model_len");
    }
    g.truncate_prompt_tokens = static_cast<int32_t>(n);
  }
  if (const json* v = Field(body, "max_tokens"); v != nullptr) {
    RESTKV_ASSIGN_OR_RETURN(int64_t max_tokens, AsInt(*v, "max_tokens", 1, kInt32Max));
    g.max_tokens = static_cast<int32_t>(max_tokens);
  }
  RESTKV_RETURN_IF_ERROR(GetInt32(body, "n", 1, kMaxChoices, &g.n));
  RESTKV_RETURN_IF_ERROR(GetBool(body, "stream", &g.stream));
  if (const json* v = Field(body, "stream_options"); v != nullptr) {
    if (!v->is_object()) return WrongType("stream_options", "an object", *v);
    if (!g.stream) {
      return InvalidParam("stream_options",
                          "'stream_options' is only allowed when 'stream' is true");
    }
    if (const json* u = Field(*v, "include_usage"); u != nullptr) {
      if (!u->is_boolean()) return WrongType("stream_options.include_usage", "a boolean", *u);
      g.include_usage = u->get<bool>();
    }
    if (const json* u = Field(*v, "continuous_usage_stats"); u != nullptr) {
      if (!u->is_boolean())
        return WrongType("stream_options.continuous_usage_stats", "a boolean", *u);
      g.continuous_usage = u->get<bool>();
    }
  }
  RESTKV_RETURN_IF_ERROR(GetString(body, "user", &g.user));
  RESTKV_RETURN_IF_ERROR(GetInt32(body, "priority", kInt32Min, kInt32Max, &g.priority));
  if (const json* v = Field(body, "kv_policy"); v != nullptr) {
    if (!v->is_string()) return WrongType("kv_policy", "a string", *v);
    g.kv_policy = v->get<std::string>();
  }
  if (const json* v = Field(body, "kv_budget"); v != nullptr) {
    RESTKV_ASSIGN_OR_RETURN(int64_t budget, AsInt(*v, "kv_budget", 0, kInt32Max));
    g.kv_budget = static_cast<int32_t>(budget);
  }
  RESTKV_RETURN_IF_ERROR(ParseStructuredOutput(body, &g.structured));
  return g;
}

// One message's content: a string, null, or a list of {"type": "text"} parts.
absl::StatusOr<std::string> ParseContent(const json& content, const std::string& param) {
  if (content.is_null()) return std::string();
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array())
    return WrongType(param, "a string or an array of content parts", content);
  std::string text;
  for (size_t j = 0; j < content.size(); ++j) {
    const json& part = content[j];
    const std::string part_param = absl::StrFormat("%s[%d]", param, j);
    if (!part.is_object()) return WrongType(part_param, "an object", part);
    std::string type;
    RESTKV_RETURN_IF_ERROR(GetString(part, "type", &type));
    if (type != "text") {
      return InvalidParam(
          part_param + ".type",
          absl::StrFormat("only content parts of type 'text' are supported, got '%s'", type));
    }
    const json* t = Field(part, "text");
    if (t == nullptr) return InvalidParam(part_param + ".text", "a text part needs 'text'");
    if (!t->is_string()) return WrongType(part_param + ".text", "a string", *t);
    if (j > 0) text += '\n';  // vLLM joins text parts with a newline
    text += t->get<std::string>();
  }
  return text;
}

absl::StatusOr<std::vector<engine::ChatMessage>> ParseMessages(const json& body) {
  const json* v = Field(body, "messages");
  if (v == nullptr) return InvalidParam("messages", "'messages' is required");
  if (!v->is_array()) return WrongType("messages", "an array", *v);
  if (v->empty()) return InvalidParam("messages", "'messages' must not be empty");
  std::vector<engine::ChatMessage> messages;
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string param = absl::StrFormat("messages[%d]", i);
    if (!m.is_object()) return WrongType(param, "an object", m);
    const json* role = Field(m, "role");
    if (role == nullptr)
      return InvalidParam(param + ".role", absl::StrFormat("'%s.role' is required", param));
    if (!role->is_string()) return WrongType(param + ".role", "a string", *role);
    engine::ChatMessage msg;
    msg.role = role->get<std::string>();
    if (msg.role == "developer") msg.role = "system";  // OpenAI's newer name for it
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" &&
        msg.role != "tool") {
      return InvalidParam(
          param + ".role",
          absl::StrFormat("role '%s' is not supported (use system, user, assistant or tool)",
                          role->get<std::string>()));
    }
    auto content = m.find("content");
    // An assistant message that calls tools may have no content (OpenAI
    // sends null); the chat template sees "".
    const bool calls_tools = msg.role == "assistant" && Field(m, "tool_calls") != nullptr;
    if (content == m.end() || (content->is_null() && calls_tools)) {
      if (!calls_tools) {
        return InvalidParam(param + ".content", absl::StrFormat("'%s.content' is required", param));
      }
    } else {
      RESTKV_ASSIGN_OR_RETURN(msg.content, ParseContent(*content, param + ".content"));
    }
    messages.push_back(std::move(msg));
  }
  return messages;
}

// The fields the chat template reads besides the messages: tools and tool
// choice, tool calls in the history, continue_final_message and
// chat_template_kwargs.
absl::Status ParseChatTemplateFields(const json& body, ChatRequest* r) {
  RESTKV_ASSIGN_OR_RETURN(r->tools, ParseChatTools(body));
  RESTKV_ASSIGN_OR_RETURN(r->template_messages, TemplateMessages(body, r->messages));
  RESTKV_RETURN_IF_ERROR(GetBool(body, "continue_final_message", &r->continue_final_message));
  // As vLLM: add_generation_prompt defaults to true, so continuing the
  // final message needs it set to false explicitly.
  if (r->continue_final_message && r->add_generation_prompt) {
    return InvalidParam("continue_final_message",
                        "'continue_final_message' and 'add_generation_prompt' cannot both be true");
  }
  if (const json* kw = Field(body, "chat_template_kwargs"); kw != nullptr) {
    if (!kw->is_object()) return WrongType("chat_template_kwargs", "an object", *kw);
    r->chat_template_kwargs = JsonToTemplateValue(*kw);
  }
  return absl::OkStatus();
}

// prompt: "text" | ["text", ...] | [id, ...] | [[id, ...], ...].
absl::StatusOr<std::vector<PromptInput>> ParsePrompts(const json& body) {
  const json* v = Field(body, "prompt");
  if (v == nullptr) return InvalidParam("prompt", "'prompt' is required");
  const char* kExpected = "a string, an array of strings, or token ids";
  if (v->is_string()) return std::vector<PromptInput>{{false, v->get<std::string>(), {}}};
  if (!v->is_array()) return WrongType("prompt", kExpected, *v);
  if (v->empty()) return InvalidParam("prompt", "'prompt' must not be empty");
  std::vector<PromptInput> prompts;
  if ((*v)[0].is_number()) {
    PromptInput p;
    p.is_tokens = true;
    RESTKV_ASSIGN_OR_RETURN(p.tokens, AsTokenIds(*v, "prompt"));
    prompts.push_back(std::move(p));
    return prompts;
  }
  for (size_t i = 0; i < v->size(); ++i) {
    const json& item = (*v)[i];
    const std::string param = absl::StrFormat("prompt[%d]", i);
    PromptInput p;
    if (item.is_string()) {
      p.text = item.get<std::string>();
    } else if (item.is_array()) {
      if (item.empty())
        return InvalidParam(param, absl::StrFormat("'%s' must not be empty", param));
      p.is_tokens = true;
      RESTKV_ASSIGN_OR_RETURN(p.tokens, AsTokenIds(item, param));
    } else {
      return WrongType(param, "a string or an array of token ids", item);
    }
    prompts.push_back(std::move(p));
  }
  return prompts;
}

// The deepest nesting of [ and { outside strings (the body is not yet known
// to be valid JSON; the count only has to be right for valid JSON).
int MaxDepth(std::string_view text) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

}  // namespace

absl::StatusOr<json> ParseJsonBody(std::string_view body) {
  if (body.empty())
    return absl::InvalidArgumentError("the request body is empty; expected a JSON object");
  // nlohmann's lexer takes a NUL byte for the end of input, so
  // `{...}\0anything` would parse as the object alone.
  if (const size_t nul = body.find('\0'); nul != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid JSON: the request body contains a NUL byte at offset %d", nul));
  }
  if (MaxDepth(body) > kMaxJsonDepth) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the request body nests deeper than %d levels", kMaxJsonDepth));
  }
  json parsed;
  try {
    parsed = json::parse(body);
  } catch (const json::exception& e) {
    // nlohmann's message names the position: "parse error at line 1, column 7: ...".
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", e.what()));
  }
  if (!parsed.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the request body must be a JSON object, got %s", TypeName(parsed)));
  }
  return parsed;
}

absl::StatusOr<CompletionRequest> ParseCompletionRequest(const json& body) {
  CompletionRequest r;
  RESTKV_RETURN_IF_ERROR(ParseModel(body, &r.model));
  RESTKV_ASSIGN_OR_RETURN(r.prompts, ParsePrompts(body));
  RESTKV_ASSIGN_OR_RETURN(r.gen, ParseGenerationFields(body));
  for (const char* chat_only : {"tools", "tool_choice", "functions", "function_call"}) {
    if (Field(body, chat_only) != nullptr) {
      return InvalidParam(
          chat_only, absl::StrCat("'", chat_only, "' is for /v1/chat/completions (tool calling)"));
    }
  }
  if (!r.gen.max_tokens.has_value()) r.gen.max_tokens = 16;  // vLLM's and OpenAI's default
  RESTKV_RETURN_IF_ERROR(GetBool(body, "echo", &r.echo));
  RESTKV_RETURN_IF_ERROR(GetInt32(body, "logprobs", 0, engine::kMaxLogprobs, &r.logprobs));
  if (static_cast<int64_t>(r.prompts.size()) * r.gen.n > kMaxChoices) {
    return InvalidParam("n", absl::StrFormat("%d prompts x n=%d is more than %d choices",
                                             r.prompts.size(), r.gen.n, kMaxChoices));
  }
  return r;
}

absl::StatusOr<ChatRequest> ParseChatRequest(const json& body) {
  ChatRequest r;
  RESTKV_RETURN_IF_ERROR(ParseModel(body, &r.model));
  RESTKV_ASSIGN_OR_RETURN(r.messages, ParseMessages(body));
  RESTKV_ASSIGN_OR_RETURN(r.gen, ParseGenerationFields(body));
  if (const json* v = Field(body, "max_completion_tokens"); v != nullptr) {
    RESTKV_ASSIGN_OR_RETURN(int64_t max_tokens, AsInt(*v, "max_completion_tokens", 1, kInt32Max));
    r.gen.max_tokens = static_cast<int32_t>(max_tokens);
  }
  RESTKV_RETURN_IF_ERROR(GetBool(body, "logprobs", &r.logprobs));
  if (const json* v = Field(body, "top_logprobs"); v != nullptr) {
    RESTKV_ASSIGN_OR_RETURN(int64_t top, AsInt(*v, "top_logprobs", 0, engine::kMaxLogprobs));
    // 0 without logprobs asks for nothing, and vLLM accepts it.
    if (!r.logprobs && top > 0) {
      return InvalidParam("top_logprobs", "'top_logprobs' needs 'logprobs' set to true");
    }
    r.top_logprobs = static_cast<int32_t>(top);
  }
  RESTKV_RETURN_IF_ERROR(GetBool(body, "add_generation_prompt", &r.add_generation_prompt));
  RESTKV_RETURN_IF_ERROR(ParseChatTemplateFields(body, &r));
  return r;
}

absl::StatusOr<TokenizeRequest> ParseTokenizeRequest(const json& body) {
  TokenizeRequest r;
  RESTKV_RETURN_IF_ERROR(ParseModel(body, &r.model));
  const bool has_prompt = Field(body, "prompt") != nullptr;
  const bool has_messages = Field(body, "messages") != nullptr;
  if (has_prompt == has_messages) {
    return InvalidParam(has_prompt ? "messages" : "prompt",
                        "give exactly one of 'prompt' or 'messages'");
  }
  if (has_prompt) {
    RESTKV_RETURN_IF_ERROR(GetString(body, "prompt", &r.prompt));
  } else {
    r.is_chat = true;
    r.add_special_tokens = false;  // the chat template writes its own
    RESTKV_ASSIGN_OR_RETURN(r.messages, ParseMessages(body));
  }
  RESTKV_RETURN_IF_ERROR(GetBool(body, "add_special_tokens", &r.add_special_tokens));
  RESTKV_RETURN_IF_ERROR(GetBool(body, "add_generation_prompt", &r.add_generation_prompt));
  RESTKV_RETURN_IF_ERROR(GetBool(body, "return_token_strs", &r.return_token_strs));
  return r;
}

absl::StatusOr<DetokenizeRequest> ParseDetokenizeRequest(const json& body) {
  DetokenizeRequest r;
  RESTKV_RETURN_IF_ERROR(ParseModel(body, &r.model));
  const json* v = Field(body, "tokens");
  if (v == nullptr) return InvalidParam("tokens", "'tokens' is required");
  RESTKV_ASSIGN_OR_RETURN(r.tokens, AsTokenIds(*v, "tokens"));
  return r;
}

}  // namespace restkv::server
