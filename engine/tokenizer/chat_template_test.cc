#include "engine/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/tokenizer/chat_template_testdata.h"

namespace restkv::engine {
namespace {

using testdata::kLlama3Template;
using testdata::kSmolLM2Template;
using testdata::Tok;

// Qwen2.5-Instruct writes "\n" as an escape inside its literals.
constexpr std::string_view kQwen25Fragment =
    "{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n        {{- '<|im_start|>system"
    "\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n        {{- "
    "'<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}";

constexpr std::string_view kLlama2Template =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
    "system_message = messages[0]['content'] %}{% else %}...{% set content = '<<SYS>>\\n' + "
    "system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}...{{ bos_token + '[INST] ' + "
    "content.strip() + ' [/INST]' }}...";

constexpr std::string_view kMistralTemplate =
    "{{ bos_token }}{% for message in messages %}...{{ '[INST] ' + message['content'] + ' "
    "[/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}";

constexpr std::string_view kZephyrTemplate =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ "
    "'<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == "
    "'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}";

const std::vector<ChatMessage> kConversation = {
    {"system", "You are terse."},
    {"user", "Hi there!"},
    {"assistant", " Hello. \n"},
    {"user", "  What is 2+2?\n\n"},
};
const std::vector<ChatMessage> kUserOnly = {{"user", "Hi there!"}};

std::string MustRender(ChatFormat f, const std::vector<ChatMessage>& m, bool gen,
                       const TokenizerData& tok) {
  auto r = RenderChat(f, m, gen, tok);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : "";
}

TEST(ChatTemplateTest, DetectsFormats) {
  EXPECT_EQ(*DetectChatFormat(kSmolLM2Template), ChatFormat::kChatML);
  EXPECT_EQ(*DetectChatFormat(kQwen25Fragment), ChatFormat::kChatML);
  EXPECT_EQ(*DetectChatFormat(kLlama3Template), ChatFormat::kLlama3);
  EXPECT_EQ(*DetectChatFormat("<|start_header_id|>x<|end_header_id|> Cutting Knowledge Date"),
            ChatFormat::kLlama31);
  EXPECT_EQ(*DetectChatFormat(kLlama2Template), ChatFormat::kLlama2);
  EXPECT_EQ(*DetectChatFormat(kMistralTemplate), ChatFormat::kMistral);
  EXPECT_EQ(*DetectChatFormat(kZephyrTemplate), ChatFormat::kZephyr);
  EXPECT_EQ(DetectChatFormat("").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(DetectChatFormat("{{ '<start_of_turn>' }}").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ChatTemplateTest, NamesRoundTrip) {
  for (const ChatFormat f : {ChatFormat::kChatML, ChatFormat::kLlama3, ChatFormat::kLlama31,
                             ChatFormat::kLlama2, ChatFormat::kMistral, ChatFormat::kZephyr}) {
    EXPECT_EQ(*ParseChatFormatName(ChatFormatName(f)), f);
  }
  const auto bad = ParseChatFormatName("alpaca");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("alpaca"), std::string::npos);
}

TEST(ChatTemplateTest, ChatMLInsertsTheTemplatesDefaultSystemPrompt) {
  const TokenizerData tok = Tok("<|im_start|>", "<|im_end|>", kSmolLM2Template);
  EXPECT_EQ(ChatMLDefaultSystemPrompt(kSmolLM2Template),
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  EXPECT_EQ(MustRender(ChatFormat::kChatML, kUserOnly, true, tok),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(MustRender(ChatFormat::kChatML, kConversation, false, tok),
            "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there!<|im_end|>\n"
            "<|im_start|>assistant\n Hello. \n<|im_end|>\n<|im_start|>user\n  What is "
            "2+2?\n\n<|im_end|>\n");
}

TEST(ChatTemplateTest, ChatMLReadsEscapedDefaultsAndPlainTemplates) {
  EXPECT_EQ(ChatMLDefaultSystemPrompt(kQwen25Fragment),
            "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  const TokenizerData plain = Tok("<s>", "</s>", "{{'<|im_start|>' + message['role']}}");
  EXPECT_EQ(MustRender(ChatFormat::kChatML, kUserOnly, true, plain),
            "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, Llama3TrimsContent) {
  const TokenizerData tok = Tok("<|begin_of_text|>", "<|eot_id|>", kLlama3Template);
  EXPECT_EQ(MustRender(ChatFormat::kLlama3, kConversation, true, tok),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are "
            "terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi "
            "there!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplateTest, Llama31AlwaysWritesTheSystemBlock) {
  const TokenizerData tok = Tok("<|begin_of_text|>", "<|eot_id|>", "");
  EXPECT_EQ(MustRender(ChatFormat::kLlama31, kUserOnly, true, tok),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge "
            "Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\nHi there!<|eot_id|><|start_header_id|>assistant"
            "<|end_header_id|>\n\n");
}

TEST(ChatTemplateTest, Llama2FoldsTheSystemPromptIntoTheFirstTurn) {
  const TokenizerData tok = Tok("<s>", "</s>", kLlama2Template);
  EXPECT_EQ(MustRender(ChatFormat::kLlama2, kConversation, true, tok),
            "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there! [/INST] Hello. </s><s>[INST] "
            "What is 2+2? [/INST]");
  const std::vector<ChatMessage> two_users = {{"user", "a"}, {"user", "b"}};
  EXPECT_EQ(RenderChat(ChatFormat::kLlama2, two_users, true, tok).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ChatTemplateTest, MistralHasNoSystemRole) {
  const TokenizerData tok = Tok("<s>", "</s>", kMistralTemplate);
  const std::vector<ChatMessage> turns(kConversation.begin() + 1, kConversation.end());
  EXPECT_EQ(MustRender(ChatFormat::kMistral, turns, true, tok),
            "<s>[INST] Hi there! [/INST] Hello. \n</s>[INST]   What is 2+2?\n\n [/INST]");
  EXPECT_EQ(RenderChat(ChatFormat::kMistral, kConversation, true, tok).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ChatTemplateTest, Zephyr) {
  const TokenizerData tok = Tok("<s>", "</s>", kZephyrTemplate);
  EXPECT_EQ(MustRender(ChatFormat::kZephyr, {kConversation[0], kConversation[1]}, true, tok),
            "<|system|>\nYou are terse.</s>\n<|user|>\nHi there!</s>\n<|assistant|>\n");
}

TEST(ChatTemplateTest, RejectsEmptyConversationsAndUnknownRoles) {
  const TokenizerData tok = Tok("<s>", "</s>", "");
  const auto empty = RenderChat(ChatFormat::kChatML, {}, true, tok);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  const auto bad_role = RenderChat(ChatFormat::kChatML, {{"wizard", "hi"}}, true, tok);
  EXPECT_EQ(bad_role.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_role.status().message().find("wizard"), std::string::npos);
}

}  // namespace
}  // namespace restkv::engine
