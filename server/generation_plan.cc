#include "server/generation_plan.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "server/api_error.h"
#include "server/prompt_bound.h"

namespace restkv::server {
namespace {

// Checks one prompt against the vocabulary and the context; `param` names
// the field for errors.
absl::Status CheckPrompt(const std::vector<int32_t>& tokens, const std::string& param,
                         const PlanContext& ctx) {
  const int32_t vocab = ctx.model.config().vocab_size;
  if (tokens.empty()) return InvalidParam(param, "the prompt is empty (it has no tokens)");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab) {
      return InvalidParam(param, absl::StrFormat("token id %d at position %d is outside the "
                                                 "vocabulary [0, %d)",
                                                 tokens[i], i, vocab));
    }
  }
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n >= ctx.max_model_len) {
    return InvalidParam(
        param,
        absl::StrFormat(
            "This model's maximum context length is %d tokens. However, your prompt has %d tokens, "
            "which leaves no room to generate. Please reduce the length of the prompt.",
            ctx.max_model_len, n));
  }
  return absl::OkStatus();
}

// Resolves max_tokens for one prompt and validates the whole parameter set.
absl::StatusOr<engine::SamplingParams> ChoiceParams(const GenerationFields& gen, int64_t prompt_len,
                                                    int32_t j, int32_t logprobs,
                                                    const std::string& prompt_param,
                                                    const engine::KvPolicyConfig& kv_policy,
                                                    const PlanContext& ctx) {
  engine::SamplingParams p = gen.params;
  const int64_t room = ctx.max_model_len - prompt_len;
  if (gen.max_tokens.has_value()) {
    if (*gen.max_tokens > room) {
      return InvalidParam(
          "max_tokens",
          absl::StrFormat(
              "This model's maximum context length is %d tokens. However, you requested %d tokens "
              "(%d in the %s, %d in the completion). Please reduce the length of the %s or "
              "completion.",
              ctx.max_model_len, prompt_len + *gen.max_tokens, prompt_len, prompt_param,
              *gen.max_tokens, prompt_param));
    }
    p.max_tokens = *gen.max_tokens;
  } else {
    p.max_tokens = static_cast<int32_t>(room);
    // A pool smaller than one full context: the default is what fits (when
    // nothing fits, Submit's capacity error says so).
    if (ctx.max_tokens_that_fit) {
      const int32_t fit = ctx.max_tokens_that_fit(static_cast<int32_t>(prompt_len), kv_policy);
      if (fit >= 1) p.max_tokens = std::min(p.max_tokens, fit);
    }
  }
  if (p.min_tokens > p.max_tokens) {
    return InvalidParam("min_tokens",
                        absl::StrFormat("min_tokens (%d) must be less than or equal to max_tokens "
                                        "(%d)%s",
                                        p.min_tokens, p.max_tokens,
                                        gen.max_tokens.has_value() ? "" : ", the default here"));
  }
  if (p.seed.has_value()) p.seed = *p.seed + static_cast<uint64_t>(j);
  p.logprobs = logprobs;
  const int32_t vocab = ctx.model.config().vocab_size;
  for (size_t i = 0; i < p.stop_token_ids.size(); ++i) {
    if (p.stop_token_ids[i] >= vocab) {
      return InvalidParam(
          "stop_token_ids",
          absl::StrFormat("stop_token_ids[%d] = %d is outside the vocabulary [0, %d)", i,
                          p.stop_token_ids[i], vocab));
    }
  }
  for (const auto& [id, bias] : p.logit_bias) {
    if (id >= vocab) {
      return InvalidParam("logit_bias",
                          absl::StrFormat("token id %d in logit_bias is outside the vocabulary "
                                          "[0, %d)",
                                          id, vocab));
    }
  }
  RESTKV_RETURN_IF_ERROR(p.Validate(vocab));
  return p;
}

// truncate_prompt_tokens: keeps the last N tokens (-1: max_model_len).
absl::Status TruncatePrompt(const GenerationFields& gen, const PlanContext& ctx,
                            std::vector<int32_t>* tokens) {
  if (!gen.truncate_prompt_tokens.has_value()) return absl::OkStatus();
  const int32_t keep =
      *gen.truncate_prompt_tokens == -1 ? ctx.max_model_len : *gen.truncate_prompt_tokens;
  if (keep > ctx.max_model_len) {
    return InvalidParam("truncate_prompt_tokens",
                        absl::StrFormat("truncate_prompt_tokens value (%d) is greater than "
                                        "max_model_len (%d). Please select a smaller truncation "
                                        "size.",
                                        keep, ctx.max_model_len));
  }
  if (static_cast<int64_t>(tokens->size()) > keep) {
    tokens->erase(tokens->begin(), tokens->end() - keep);
  }
  return absl::OkStatus();
}

// The server's default policy with the request's kv_policy / kv_budget.
absl::StatusOr<engine::KvPolicyConfig> ResolveKvPolicy(const GenerationFields& gen,
                                                       const PlanContext& ctx) {
  engine::KvPolicyConfig config = ctx.default_kv_policy;
  // A policy name, optionally with "+adakv" (head-wise budgets), as on the
  // command line; a name without the suffix turns head-wise budgets off.
  if (gen.kv_policy.has_value()) {
    if (absl::Status s = engine::ApplyKvPolicySpec(*gen.kv_policy, &config); !s.ok()) {
      return InvalidParam("kv_policy", std::string(s.message()));
    }
  }
  if (gen.kv_budget.has_value()) config.budget = *gen.kv_budget;
  if (absl::Status s = config.Validate(); !s.ok()) {
    return InvalidParam(
        gen.kv_budget.has_value() && !gen.kv_policy.has_value() ? "kv_budget" : "kv_policy",
        std::string(s.message()));
  }
  return config;
}

absl::StatusOr<GenerationPlan> Skeleton(ApiKind kind, const GenerationFields& gen,
                                        const PlanContext& ctx) {
  if (gen.priority != 0 && !ctx.limits.priority_scheduling) {
    return InvalidParam("priority",
                        absl::StrFormat("priority %d was given, but priority scheduling is off "
                                        "(the server runs first come, first served; start it "
                                        "with --scheduling-policy priority)",
                                        gen.priority));
  }
  GenerationPlan plan;
  plan.kind = kind;
  plan.meta.id = NewResponseId(kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-");
  plan.meta.model = ctx.served_model;
  plan.meta.system_fingerprint = ctx.system_fingerprint;
  plan.meta.created = UnixSecondsNow();
  plan.stream = gen.stream;
  plan.include_usage = gen.include_usage;
  plan.continuous_usage = gen.include_usage && gen.continuous_usage;
  plan.priority = gen.priority;
  RESTKV_ASSIGN_OR_RETURN(plan.kv_policy, ResolveKvPolicy(gen, ctx));
  plan.user = gen.user;
  if (gen.structured.has_value()) {
    if (ctx.grammars == nullptr) {
      return InvalidParam(gen.structured->param, "structured outputs are not available here");
    }
    absl::StatusOr<std::shared_ptr<const engine::structured::CompiledGrammar>> g =
        ctx.grammars->Compile(gen.structured->spec);
    if (!g.ok()) {
      return InvalidParam(
          gen.structured->param,
          absl::StrFormat("invalid %s: %s",
                          engine::structured::GrammarKindName(gen.structured->spec.kind),
                          g.status().message()));
    }
    plan.grammar = *std::move(g);
  }
  return plan;
}

// The whole request's generation budget against --max-tokens-per-request.
absl::Status CheckTotalTokens(const GenerationPlan& plan, const GenerationFields& gen,
                              const PlanContext& ctx) {
  if (ctx.limits.max_tokens_per_request <= 0) return absl::OkStatus();
  int64_t total = 0;
  for (const PlannedChoice& c : plan.choices) total += c.params.max_tokens;
  if (total <= ctx.limits.max_tokens_per_request) return absl::OkStatus();
  return InvalidParam(
      gen.max_tokens.has_value() ? "max_tokens" : "n",
      absl::StrFormat(
          "the request asks for up to %d generated tokens (%d choices x %s) but this server "
          "allows %d per request; lower n or max_tokens",
          total, plan.choices.size(),
          gen.max_tokens.has_value() ? absl::StrFormat("max_tokens %d", *gen.max_tokens)
                                     : std::string("the rest of the context, max_tokens absent"),
          ctx.limits.max_tokens_per_request));
}

// Refuses a text of `bytes` bytes that cannot fit the context whatever it
// holds, before it is tokenized.
absl::Status CheckPromptBytes(size_t bytes, const std::string& param, const PlanContext& ctx) {
  if (ctx.limits.max_token_bytes <= 0) return absl::OkStatus();
  const int64_t min_tokens = MinTokensForBytes(bytes, ctx.limits.max_token_bytes);
  if (min_tokens < ctx.max_model_len) return absl::OkStatus();
  return InvalidParam(
      param,
      absl::StrFormat("This model's maximum context length is %d tokens. However, your prompt is "
                      "%d bytes, which is at least %d tokens (no token of this model covers more "
                      "than %d bytes). Please reduce the length of the prompt.",
                      ctx.max_model_len, bytes, min_tokens, ctx.limits.max_token_bytes));
}

// TokenizeChat, refusing a rendered text that cannot fit ctx's context
// before tokenizing it (no check when ctx is null). The check is on the
// rendered text (rendering is linear), not on the messages: some formats
// strip whitespace from a message's content.
absl::StatusOr<std::vector<int32_t>> RenderAndTokenizeChat(
    const engine::Model& model, const std::vector<engine::ChatMessage>& messages,
    bool add_generation_prompt, bool add_special_tokens, const PlanContext* ctx) {
  if (!model.has_chat_template()) {
    return InvalidParam("messages", absl::StrFormat("this model has no usable chat template (%s); "
                                                    "use /v1/completions",
                                                    model.chat_format().status().message()));
  }
  absl::StatusOr<std::string> text = model.RenderChat(messages, add_generation_prompt);
  if (!text.ok()) return InvalidParam("messages", std::string(text.status().message()));
  if (ctx != nullptr) RESTKV_RETURN_IF_ERROR(CheckPromptBytes(text->size(), "messages", *ctx));
  // Templates that spell BOS in the text must not get a second one.
  const bool writes_bos = model.ChatTextHasBos(*text);
  return model.tokenizer().Encode(*text, add_special_tokens && !writes_bos, /*parse_special=*/true);
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> TokenizeChat(const engine::Model& model,
                                                  const std::vector<engine::ChatMessage>& messages,
                                                  bool add_generation_prompt,
                                                  bool add_special_tokens) {
  return RenderAndTokenizeChat(model, messages, add_generation_prompt, add_special_tokens,
                               /*ctx=*/nullptr);
}

absl::StatusOr<GenerationPlan> PlanCompletion(const CompletionRequest& r, const PlanContext& ctx) {
  RESTKV_ASSIGN_OR_RETURN(GenerationPlan plan, Skeleton(ApiKind::kCompletion, r.gen, ctx));
  plan.echo = r.echo;
  plan.logprobs = r.logprobs >= 0;
  const engine::Tokenizer& tok = ctx.model.tokenizer();
  for (size_t p = 0; p < r.prompts.size(); ++p) {
    const PromptInput& in = r.prompts[p];
    const std::string param = r.prompts.size() == 1 ? "prompt" : absl::StrFormat("prompt[%d]", p);
    PlannedPrompt planned;
    // A prompt that will be truncated may be as long as it likes.
    if (!in.is_tokens && !r.gen.truncate_prompt_tokens.has_value()) {
      RESTKV_RETURN_IF_ERROR(CheckPromptBytes(in.text.size(), param, ctx));
    }
    // Special-token texts in a prompt count as the tokens, as in vLLM (HF
    // tokenizers) and llama.cpp's server.
    planned.tokens = in.is_tokens
                         ? in.tokens
                         : tok.Encode(in.text, /*add_special=*/true, /*parse_special=*/true);
    const size_t untruncated = planned.tokens.size();
    RESTKV_RETURN_IF_ERROR(TruncatePrompt(r.gen, ctx, &planned.tokens));
    RESTKV_RETURN_IF_ERROR(CheckPrompt(planned.tokens, param, ctx));
    if (r.echo) {
      const bool decoded = in.is_tokens || planned.tokens.size() != untruncated;
      planned.echo_text = decoded ? tok.Decode(planned.tokens) : in.text;
    }
    for (int32_t j = 0; j < r.gen.n; ++j) {
      PlannedChoice c;
      c.index = static_cast<int32_t>(p) * r.gen.n + j;
      c.prompt_index = static_cast<int32_t>(p);
      RESTKV_ASSIGN_OR_RETURN(c.params, ChoiceParams(r.gen, planned.tokens.size(), j, r.logprobs,
                                                     "prompt", plan.kv_policy, ctx));
      plan.choices.push_back(std::move(c));
    }
    plan.prompts.push_back(std::move(planned));
  }
  RESTKV_RETURN_IF_ERROR(CheckTotalTokens(plan, r.gen, ctx));
  return plan;
}

// The full chat request through the model's template (tools, tool calls,
// continue_final_message, chat_template_kwargs), then tokenized as
// RenderAndTokenizeChat does.
absl::StatusOr<std::vector<int32_t>> RenderAndTokenizeChatRequest(const ChatRequest& r,
                                                                  const PlanContext& ctx) {
  const engine::Model& model = ctx.model;
  if (!model.has_chat_template()) {
    return InvalidParam("messages", absl::StrFormat("this model has no usable chat template (%s); "
                                                    "use /v1/completions",
                                                    model.chat_format().status().message()));
  }
  engine::ChatTemplateInput input;
  input.messages =
      r.template_messages.is_list() ? r.template_messages : engine::ChatMessagesToValue(r.messages);
  // tool_choice "none" still shows the tools to the template, as vLLM does.
  input.tools = r.tools.value;
  input.add_generation_prompt = r.add_generation_prompt;
  input.continue_final_message = r.continue_final_message;
  input.kwargs = r.chat_template_kwargs;
  absl::StatusOr<std::string> text = model.RenderChat(input);
  if (!text.ok()) return InvalidParam("messages", std::string(text.status().message()));
  // A prompt to be truncated may be longer than the context.
  if (!r.gen.truncate_prompt_tokens.has_value()) {
    RESTKV_RETURN_IF_ERROR(CheckPromptBytes(text->size(), "messages", ctx));
  }
  return model.tokenizer().Encode(*text, /*add_special=*/!model.ChatTextHasBos(*text),
                                  /*parse_special=*/true);
}

// tool_choice required/named: the output is held to the call's JSON schema.
absl::Status PlanTools(const ChatRequest& r, const PlanContext& ctx, GenerationPlan* plan) {
  plan->tools = r.tools;
  if (!ctx.limits.tool_call_parser.empty()) {
    RESTKV_ASSIGN_OR_RETURN(plan->tool_format,
                            ParseToolCallFormatName(ctx.limits.tool_call_parser));
  } else {
    plan->tool_format = ToolCallFormatForTemplate(ctx.model.chat_template_source());
  }
  if (!r.tools.constrained()) return absl::OkStatus();
  const char* param = r.tools.legacy ? "function_call" : "tool_choice";
  if (plan->grammar != nullptr) {
    return InvalidParam(param, absl::StrCat("'", param,
                                            "' required or naming a function cannot be combined "
                                            "with a structured-output constraint"));
  }
  if (ctx.grammars == nullptr)
    return InvalidParam(param, "constrained tool calls are not available here");
  engine::structured::GrammarSpec spec;
  spec.kind = engine::structured::GrammarKind::kJsonSchema;
  spec.text = ConstrainedToolSchema(r.tools);
  absl::StatusOr<std::shared_ptr<const engine::structured::CompiledGrammar>> g =
      ctx.grammars->Compile(spec);
  if (!g.ok()) {
    return InvalidParam(
        r.tools.legacy ? "functions" : "tools",
        absl::StrCat("the tools' parameters cannot be enforced: ", g.status().message()));
  }
  plan->grammar = *g;
  return absl::OkStatus();
}

absl::StatusOr<GenerationPlan> PlanChat(const ChatRequest& r, const PlanContext& ctx) {
  RESTKV_ASSIGN_OR_RETURN(GenerationPlan plan, Skeleton(ApiKind::kChat, r.gen, ctx));
  plan.logprobs = r.logprobs;
  RESTKV_RETURN_IF_ERROR(PlanTools(r, ctx, &plan));
  PlannedPrompt planned;
  RESTKV_ASSIGN_OR_RETURN(planned.tokens, RenderAndTokenizeChatRequest(r, ctx));
  RESTKV_RETURN_IF_ERROR(TruncatePrompt(r.gen, ctx, &planned.tokens));
  RESTKV_RETURN_IF_ERROR(CheckPrompt(planned.tokens, "messages", ctx));
  for (int32_t j = 0; j < r.gen.n; ++j) {
    PlannedChoice c;
    c.index = j;
    RESTKV_ASSIGN_OR_RETURN(
        c.params, ChoiceParams(r.gen, planned.tokens.size(), j, r.logprobs ? r.top_logprobs : -1,
                               "messages", plan.kv_policy, ctx));
    plan.choices.push_back(std::move(c));
  }
  plan.prompts.push_back(std::move(planned));
  RESTKV_RETURN_IF_ERROR(CheckTotalTokens(plan, r.gen, ctx));
  return plan;
}

}  // namespace restkv::server
