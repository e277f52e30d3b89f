// Chat templates and a two-token vocabulary shared by the chat-template
// tests (the built-in families and the Jinja path render the same prompts
// from them).
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "engine/tokenizer/tokenizer.h"

namespace restkv::engine::testdata {

// SmolLM2-135M-Instruct's tokenizer.chat_template, verbatim (raw newlines
// inside the Jinja string literals, as in the GGUF file).
constexpr std::string_view kSmolLM2Template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}";

constexpr std::string_view kLlama3Template =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

// A vocabulary of just `bos` and `eos`, carrying `chat_template`.
inline TokenizerData Tok(std::string bos, std::string eos, std::string_view chat_template) {
  TokenizerData d;
  d.tokens = {std::move(bos), std::move(eos)};
  d.bos_id = 0;
  d.eos_id = 1;
  d.chat_template = std::string(chat_template);
  return d;
}

}  // namespace restkv::engine::testdata
