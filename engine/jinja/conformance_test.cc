// Conformance with Python's jinja2 over real chat templates: every
// template × conversation × add_generation_prompt in
// tests/chat_templates/fixtures.json (made by gen_fixtures.py with jinja2 as
// transformers configures it) must render to the identical string, or fail
// where jinja2 raised.
#include <fstream>
#include <sstream>
#include <string>

#include "engine/jinja/template.h"
#include "engine/structured/json_value.h"
#include "gtest/gtest.h"

namespace restkv::engine::jinja {
namespace {

using structured::JsonValue;

Value FromJson(const JsonValue& j) {
  switch (j.kind()) {
    case JsonValue::Kind::kNull:
      return Value::None();
    case JsonValue::Kind::kBool:
      return Value::Bool(j.bool_value());
    case JsonValue::Kind::kNumber: {
      const std::string text = j.Serialize();
      if (text.find_first_of(".eE") == std::string::npos) {
        return Value::Int(static_cast<int64_t>(j.number()));
      }
      return Value::Float(j.number());
    }
    case JsonValue::Kind::kString:
      return Value::String(j.string());
    case JsonValue::Kind::kArray: {
      ValueList items;
      for (const JsonValue& item : j.array()) items.push_back(FromJson(item));
      return Value::List(std::move(items));
    }
    case JsonValue::Kind::kObject: {
      Value d = Value::Dict();
      for (const auto& [k, v] : j.members()) d.mutable_dict().Set(k, FromJson(v));
      return d;
    }
  }
  return Value();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(JinjaConformanceTest, RealTemplatesMatchJinja2) {
  const std::string dir = std::string(RESTKV_SOURCE_DIR) + "/tests/chat_templates/";
  absl::StatusOr<JsonValue> fixtures = JsonValue::Parse(ReadFile(dir + "fixtures.json"));
  ASSERT_TRUE(fixtures.ok()) << fixtures.status();
  RenderOptions options;
  options.now = absl::FromUnixSeconds(static_cast<int64_t>(fixtures->Find("now_unix")->number()));
  const JsonValue* conversations = fixtures->Find("conversations");
  int checked = 0, raising = 0;
  std::string last_template;
  absl::StatusOr<Template> tmpl = absl::UnknownError("none");
  for (const JsonValue& c : fixtures->Find("cases")->array()) {
    const std::string name = c.Find("template")->string();
    if (name != last_template) {
      tmpl = Template::Parse(ReadFile(dir + "templates/" + name + ".jinja"));
      last_template = name;
    }
    ASSERT_TRUE(tmpl.ok()) << name << ": " << tmpl.status();
    const JsonValue* conv = conversations->Find(c.Find("conversation")->string());
    Value context = Value::Dict();
    context.mutable_dict().Set("messages", FromJson(*conv->Find("messages")));
    const JsonValue* tools = conv->Find("tools");
    context.mutable_dict().Set("tools", tools != nullptr ? FromJson(*tools) : Value::None());
    context.mutable_dict().Set("add_generation_prompt",
                               Value::Bool(c.Find("add_generation_prompt")->bool_value()));
    context.mutable_dict().Set("bos_token", Value::String(c.Find("bos_token")->string()));
    context.mutable_dict().Set("eos_token", Value::String(c.Find("eos_token")->string()));
    const std::string label = name + " / " + c.Find("conversation")->string() +
                              (c.Find("add_generation_prompt")->bool_value() ? " +gen" : "");
    absl::StatusOr<std::string> got = tmpl->Render(context, options);
    if (const JsonValue* error = c.Find("error")) {
      EXPECT_FALSE(got.ok()) << label << ": jinja2 raised " << error->string()
                             << " but C++ rendered:\n"
                             << *got;
      ++raising;
    } else {
      if (!got.ok()) {
        ADD_FAILURE() << label << ": " << got.status();
      } else {
        EXPECT_EQ(*got, c.Find("expected")->string()) << label;
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 500);
  EXPECT_GT(raising, 0);
}

}  // namespace
}  // namespace restkv::engine::jinja
