#include "engine/tokenizer/jinja_chat_template.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/tokenizer/chat_template_testdata.h"

namespace restkv::engine {
namespace {

using testdata::kLlama3Template;
using testdata::kSmolLM2Template;
using testdata::Tok;

const std::vector<std::vector<ChatMessage>> kConversations = {
    {{"user", "Hi"}},
    {{"system", "You are terse."},
     {"user", "Hi there!"},
     {"assistant", " Hello. \n"},
     {"user", "Bye"}},
    {{"user", "  spaced  "}, {"assistant", "ok"}},
};

// The built-in families were written to render what these templates render:
// the Jinja path must give the same prompts (so the default model's chat
// goldens do not move).
TEST(JinjaChatTemplateTest, MatchesTheBuiltInFamilies) {
  const struct {
    ChatFormat format;
    TokenizerData tok;
  } cases[] = {{ChatFormat::kChatML, Tok("<|im_start|>", "<|im_end|>", kSmolLM2Template)},
               {ChatFormat::kLlama3, Tok("<|begin_of_text|>", "<|eot_id|>", kLlama3Template)}};
  for (const auto& c : cases) {
    absl::StatusOr<JinjaChatTemplate> t = JinjaChatTemplate::Create(c.tok.chat_template, c.tok);
    ASSERT_TRUE(t.ok()) << t.status();
    for (const auto& conv : kConversations) {
      for (const bool gen : {true, false}) {
        ChatTemplateInput in;
        in.messages = ChatMessagesToValue(conv);
        in.add_generation_prompt = gen;
        absl::StatusOr<std::string> got = t->Render(in, absl::Now());
        absl::StatusOr<std::string> want = RenderChat(c.format, conv, gen, c.tok);
        ASSERT_TRUE(got.ok()) << got.status();
        ASSERT_TRUE(want.ok()) << want.status();
        EXPECT_EQ(*got, *want) << ChatFormatName(c.format);
      }
    }
  }
}

TEST(JinjaChatTemplateTest, KwargsAndToolsAreVariables) {
  const TokenizerData tok = Tok("<s>", "</s>", "");
  absl::StatusOr<JinjaChatTemplate> t = JinjaChatTemplate::Create(
      "{{ bos_token }}{% if enable_thinking is defined %}think={{ enable_thinking }}{% endif %}"
      "{% if tools is not none %}{{ tools | length }} tools{% endif %}{{ eos_token }}",
      tok);
  ASSERT_TRUE(t.ok()) << t.status();
  ChatTemplateInput in;
  EXPECT_EQ(*t->Render(in, absl::Now()), "<s></s>");
  in.kwargs.mutable_dict().Set("enable_thinking", jinja::Value::Bool(false));
  in.tools = jinja::Value::List({jinja::Value::Dict()});
  EXPECT_EQ(*t->Render(in, absl::Now()), "<s>think=False1 tools</s>");
}

TEST(JinjaChatTemplateTest, ContinueFinalMessageCutsAfterItsContent) {
  const TokenizerData tok = Tok("<|im_start|>", "<|im_end|>", kSmolLM2Template);
  absl::StatusOr<JinjaChatTemplate> t = JinjaChatTemplate::Create(kSmolLM2Template, tok);
  ASSERT_TRUE(t.ok());
  ChatTemplateInput in;
  in.messages = ChatMessagesToValue(
      {{"system", "S"}, {"user", "Name a colour"}, {"assistant", "The colour is"}});
  in.continue_final_message = true;
  EXPECT_EQ(*t->Render(in, absl::Now()),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nName a colour<|im_end|>\n"
            "<|im_start|>assistant\nThe colour is");
  // Trailing whitespace a template trims stays trimmed (HF's rule).
  EXPECT_EQ(*CutAfterFinalMessage("<a>text<b>", "text  "), "<a>text");
  EXPECT_EQ(*CutAfterFinalMessage("<a>text  <b>", "text  "), "<a>text  ");
  EXPECT_FALSE(CutAfterFinalMessage("<a>other<b>", "text").ok());
}

TEST(JinjaChatTemplateTest, ErrorsNameTheTemplateLine) {
  const TokenizerData tok = Tok("<s>", "</s>", "");
  absl::StatusOr<JinjaChatTemplate> bad = JinjaChatTemplate::Create("ok\n{% if %}", tok);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "chat template line 2: expected an expression but found the end of the tag");
  absl::StatusOr<JinjaChatTemplate> raises = JinjaChatTemplate::Create(
      "{% if messages[0]['role'] == 'system' %}\n{{ raise_exception('System role not supported') "
      "}}{% endif %}",
      tok);
  ASSERT_TRUE(raises.ok());
  ChatTemplateInput in;
  in.messages = ChatMessagesToValue({{"system", "x"}});
  EXPECT_EQ(raises->Render(in, absl::Now()).status().message(),
            "chat template line 2: template raised: System role not supported");
}

}  // namespace
}  // namespace restkv::engine
