// Chat templates: render a conversation into the prompt text a chat model
// was trained on.
//
// Models ship a Jinja template (GGUF tokenizer.chat_template). Instead of
// embedding a Jinja interpreter, restkv recognises the handful of template
// families its models use and renders them in C++, producing the same text
// HF transformers / llama-cpp-python get from the official templates
// (Jinja with trim_blocks and lstrip_blocks):
//
//   chatml   SmolLM2, Qwen2, Qwen2.5
//            <|im_start|>{role}\n{content}<|im_end|>\n ... (+ <|im_start|>assistant\n)
//   llama3   Llama 3 Instruct
//            {bos}<|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|> ...
//            (+ <|start_header_id|>assistant<|end_header_id|>\n\n)
//   llama31  Llama 3.1 / 3.2 Instruct: llama3 with a system turn always first, holding
//            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n{system}"
//            (the date the official templates use when none is passed in)
//   llama2   Llama 2 chat
//            <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ...
//   mistral  Mistral / Mixtral Instruct (no system role)
//            <s>[INST] {user} [/INST]{assistant}</s>[INST] ...
//   zephyr   Zephyr, TinyLlama chat
//            <|{role}|>\n{content}</s>\n ... (+ <|assistant|>\n)
//
// Default system prompts: a ChatML template that inserts a system turn when
// the conversation has none (SmolLM2: "You are a helpful AI assistant named
// SmolLM, trained by Hugging Face"; Qwen2: "You are a helpful assistant.")
// has that text read from the template string itself, so whatever the GGUF
// file says is reproduced exactly.
//
// Known limits: tool calls and multimodal content are not rendered; template
// variants outside these families are not recognised (DetectChatFormat says
// so and the caller can name a format explicitly).
//
// Thread safety: all functions are pure.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/tokenizer/tokenizer.h"

namespace restkv::engine {

enum class ChatFormat { kChatML, kLlama3, kLlama31, kLlama2, kMistral, kZephyr };

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// Detects the format from a Jinja template string by its markers.
// NotFound when the template is empty; InvalidArgument naming the problem
// when it is not one of the supported families.
absl::StatusOr<ChatFormat> DetectChatFormat(std::string_view jinja_template);

// "chatml", "llama3", "llama31", "llama2", "mistral", "zephyr" (as returned
// by ChatFormatName). InvalidArgument listing the valid names otherwise.
absl::StatusOr<ChatFormat> ParseChatFormatName(std::string_view name);
std::string_view ChatFormatName(ChatFormat format);

// Renders `messages` as the model's template would, appending the assistant
// generation prompt when add_generation_prompt (llama2 and mistral have
// none: their prompt already ends with [/INST]). BOS/EOS texts come from
// `tok` (tokens[bos_id] / tokens[eos_id], falling back to "<s>"/"</s>" or
// "<|begin_of_text|>"), and ChatML's default system prompt from
// tok.chat_template. The text contains special-token texts: tokenize it with
// parse_special=true, and add_special=false for formats that write BOS
// themselves (llama2, llama3, llama31, mistral).
// InvalidArgument for an empty conversation, an unknown role, a role the
// format does not allow (system for mistral), or turns that do not alternate
// user/assistant where the template requires it (llama2, mistral).
absl::StatusOr<std::string> RenderChat(ChatFormat format, absl::Span<const ChatMessage> messages,
                                       bool add_generation_prompt, const TokenizerData& tok);

// The literal system prompt a ChatML template inserts when the conversation
// does not start with a system message, or "" if it inserts none.
std::string ChatMLDefaultSystemPrompt(std::string_view jinja_template);

}  // namespace restkv::engine
