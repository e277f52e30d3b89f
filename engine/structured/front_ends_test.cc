// The front ends (GBNF, regex, JSON Schema, choice, json_object) through the
// matcher over a byte vocabulary: which texts are complete sentences.
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/structured/gbnf.h"
#include "engine/structured/json_schema_to_gbnf.h"
#include "engine/structured/regex_to_gbnf.h"
#include "engine/structured/structured_testutil.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace restkv::engine::structured {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const CompiledGrammar> Spec(GrammarKind kind, const std::string& text,
                                            std::vector<std::string> choices = {}) {
  GrammarCompiler c(ByteVocab());
  auto g = c.Compile({kind, text, std::move(choices)});
  EXPECT_TRUE(g.ok()) << g.status();
  return g.ok() ? *g : nullptr;
}

std::string Error(GrammarKind kind, const std::string& text) {
  GrammarCompiler c(ByteVocab());
  auto g = c.Compile({kind, text, {}});
  return g.ok() ? "OK" : std::string(g.status().message());
}

TEST(GbnfTest, Errors) {
  EXPECT_THAT(Error(GrammarKind::kGbnf, "root ::= foo"),
              HasSubstr("'foo' is used but not defined"));
  EXPECT_THAT(Error(GrammarKind::kGbnf, "root ::= root \"a\" | \"a\""),
              HasSubstr("left-recursive"));
  EXPECT_THAT(Error(GrammarKind::kGbnf, "root ::= x\nx ::= \"a\"? x \"b\""),
              HasSubstr("left-recursive"));
  EXPECT_THAT(Error(GrammarKind::kGbnf, "a ::= \"x\""), HasSubstr("no rule named 'root'"));
  EXPECT_THAT(Error(GrammarKind::kGbnf, "root ::= \"a\"\nb ::= [a-"), HasSubstr("line 2"));
  EXPECT_THAT(Error(GrammarKind::kGbnf, "root ::= (\"a\""), HasSubstr("')'"));
  EXPECT_THAT(Error(GrammarKind::kGbnf, "root ::= \"a\"{3,2}"), HasSubstr("maximum"));
}

TEST(GbnfTest, Syntax) {
  auto g = Spec(GrammarKind::kGbnf, R"(# a comment
root ::= greeting ( " " name )? "!"
  | "bye"
greeting ::= "hi" | "hello"   # trailing comment
name ::= [A-Z] [a-z]{1,3} "\x21"?
)");
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(AcceptsText(g, "hi!"));
  EXPECT_TRUE(AcceptsText(g, "hello Bob!"));
  EXPECT_TRUE(AcceptsText(g, "hello Bobb!!"));
  EXPECT_TRUE(AcceptsText(g, "bye"));
  EXPECT_FALSE(AcceptsText(g, "hello Bobbby!"));
  EXPECT_FALSE(AcceptsText(g, "hello bob!"));
  EXPECT_FALSE(AcceptsText(g, "hi"));
  auto any = Spec(GrammarKind::kGbnf, "root ::= [^a]. [\\u00e9-\\u00ea]");
  EXPECT_TRUE(AcceptsText(any, "b\xE2\x82\xAC\xC3\xAA"));  // b € ê
  EXPECT_FALSE(AcceptsText(any, "a\xE2\x82\xAC\xC3\xAA"));
}

TEST(RegexTest, FullMatches) {
  struct Case {
    std::string regex, text;
    bool match;
  };
  const Case cases[] = {
      {"[a-c]+x?", "abcx", true},
      {"[a-c]+x?", "abcxx", false},
      {"^\\d{3}-\\d{4}$", "555-1234", true},
      {"\\d{3}-\\d{4}", "555-12345", false},
      {"(cat|dog)s?", "dogs", true},
      {"(?:cat|dog)s?", "cow", false},
      {"a.c",
       "a\xC3\xA9"
       "c",
       true},
      {"a.c", "a\nc", false},
      {"[^0-9]{2}", "ab", true},
      {"[^0-9]{2}", "a1", false},
      {"\\w+@\\w+\\.com", "me@x.com", true},
      {"x{2,}", "x", false},
      {"x{2,}", "xxxxx", true},
      {"a|", "", true},
      {"\\(\\)", "()", true},
      {"[\\d.]+", "1.5", true},
      {"(?P<y>\\d{4})", "2024", true},
      {"a{,2}b", "aab", true},
      {"a*?b", "aaab", true},
      {"\\s\\S", " x", true},
  };
  for (const Case& c : cases) {
    auto g = Spec(GrammarKind::kRegex, c.regex);
    ASSERT_NE(g, nullptr) << c.regex;
    EXPECT_EQ(AcceptsText(g, c.text), c.match) << c.regex << " on '" << c.text << "'";
  }
}

TEST(RegexTest, UnsupportedFeaturesAreErrors) {
  EXPECT_THAT(Error(GrammarKind::kRegex, "(a)\\1"), HasSubstr("backreference"));
  EXPECT_THAT(Error(GrammarKind::kRegex, "a(?=b)"), HasSubstr("lookaround"));
  EXPECT_THAT(Error(GrammarKind::kRegex, "\\bword"), HasSubstr("\\b"));
  EXPECT_THAT(Error(GrammarKind::kRegex, "a**"), HasSubstr("multiple repeat"));
  EXPECT_THAT(Error(GrammarKind::kRegex, "(ab"), HasSubstr("missing ')'"));
  EXPECT_THAT(Error(GrammarKind::kRegex, "ab)"), HasSubstr("unbalanced"));
  EXPECT_THAT(Error(GrammarKind::kRegex, "[z-a]"), HasSubstr("bad character range"));
}

TEST(ChoiceTest, ExactlyOneChoice) {
  auto g = Spec(GrammarKind::kChoice, "", {"yes", "no", "y\"es"});
  EXPECT_TRUE(AcceptsText(g, "yes"));
  EXPECT_TRUE(AcceptsText(g, "y\"es"));
  EXPECT_FALSE(AcceptsText(g, "yesno"));
  EXPECT_FALSE(AcceptsText(g, "n"));
  EXPECT_THAT(Error(GrammarKind::kChoice, ""), HasSubstr("empty"));
}

TEST(JsonObjectTest, AnyObject) {
  auto g = Spec(GrammarKind::kJsonObject, "");
  EXPECT_TRUE(AcceptsText(g, "{}"));
  EXPECT_TRUE(AcceptsText(g, R"({"a": [1, -2.5e3, "x\"\u00e9", true, null, {"b": {}}]})"));
  EXPECT_FALSE(AcceptsText(g, "[1]"));
  EXPECT_FALSE(AcceptsText(g, R"({"a": 01})"));
  EXPECT_FALSE(AcceptsText(g, R"({"a": "\x"})"));
  EXPECT_FALSE(AcceptsText(g, "{\"a\": \"\n\"}")) << "a raw newline inside a string";
  EXPECT_FALSE(AcceptsText(g, "{'a': 1}"));
}

TEST(JsonSchemaTest, ObjectsWithRequiredAndOptionalMembers) {
  auto g = Spec(GrammarKind::kJsonSchema, R"({
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 3},
                   "age": {"type": "integer", "minimum": 0, "maximum": 120},
                   "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2}},
    "required": ["age"]})");
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(AcceptsText(g, R"({"age": 7})"));
  EXPECT_TRUE(AcceptsText(g, R"({"name": "Bo", "age": 120, "tags": ["a", "b"]})"));
  EXPECT_TRUE(AcceptsText(g, R"({"age":0,"tags":[]})"));
  EXPECT_FALSE(AcceptsText(g, R"({"name": "Bo"})")) << "age is required";
  EXPECT_FALSE(AcceptsText(g, R"({"name": "Bobby", "age": 1})")) << "maxLength";
  EXPECT_FALSE(AcceptsText(g, R"({"age": 121})"));
  EXPECT_FALSE(AcceptsText(g, R"({"age": 1, "tags": ["a", "b", "a"]})")) << "maxItems";
  EXPECT_FALSE(AcceptsText(g, R"({"age": 1, "x": 1})")) << "no additional properties";
  EXPECT_FALSE(AcceptsText(g, R"({"age": 1, "name": "x"})")) << "members in schema order";
}

// Every integer in a window around the bounds, against plain arithmetic.
TEST(JsonSchemaTest, IntegerBoundsExact) {
  struct Range {
    std::string keywords;
    int64_t lo, hi;
  };
  const Range ranges[] = {
      {R"("minimum": 0, "maximum": 120)", 0, 120},
      {R"("minimum": -37, "maximum": 1042)", -37, 1042},
      {R"("exclusiveMinimum": -5, "exclusiveMaximum": -1)", -4, -2},
      {R"("minimum": 95)", 95, INT64_MAX},
      {R"("maximum": -3)", INT64_MIN, -3},
      {R"("minimum": 7.5, "maximum": 7.9)", 8, 7},
  };
  for (const Range& r : ranges) {
    const std::string schema = absl::StrCat(R"({"type": "integer", )", r.keywords, "}");
    GrammarCompiler c(ByteVocab());
    auto g = c.Compile({GrammarKind::kJsonSchema, schema, {}});
    if (r.lo > r.hi) {
      EXPECT_FALSE(g.ok()) << schema;
      continue;
    }
    ASSERT_TRUE(g.ok()) << schema << ": " << g.status();
    for (int64_t n = -1200; n <= 1200; ++n) {
      EXPECT_EQ(AcceptsText(*g, absl::StrCat(n)), n >= r.lo && n <= r.hi) << schema << " n=" << n;
    }
    EXPECT_FALSE(AcceptsText(*g, "-0"));
    EXPECT_FALSE(AcceptsText(*g, "007"));
  }
}

TEST(JsonSchemaTest, RefsAnyOfFormatsAndPatterns) {
  auto g = Spec(GrammarKind::kJsonSchema, R"({
    "$defs": {"node": {"type": "object", "properties": {
        "v": {"anyOf": [{"type": "string", "pattern": "^[a-z]\"\\d$"}, {"type": "null"}]},
        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
      "required": ["v"]}},
    "$ref": "#/$defs/node"})");
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(AcceptsText(g, R"({"v": null})"));
  EXPECT_TRUE(AcceptsText(g, R"({"v": "a\"1", "kids": [{"v": null, "kids": []}]})"));
  EXPECT_FALSE(AcceptsText(g, R"({"v": "a1"})"));
  auto f = Spec(GrammarKind::kJsonSchema, R"({"type": "string", "format": "date"})");
  EXPECT_TRUE(AcceptsText(f, R"("2024-02-29")"));
  EXPECT_FALSE(AcceptsText(f, R"("2024-13-01")"));
}

TEST(JsonSchemaTest, UnsupportedKeywordsAreNamed) {
  EXPECT_THAT(
      Error(GrammarKind::kJsonSchema,
            R"({"type": "object", "properties": {"t": {"type": "array", "uniqueItems": true}}})"),
      HasSubstr("'uniqueItems' at #/properties/t"));
  EXPECT_THAT(Error(GrammarKind::kJsonSchema, R"({"type": "string", "format": "hostname"})"),
              HasSubstr("format 'hostname'"));
  EXPECT_THAT(Error(GrammarKind::kJsonSchema, R"({"not": {}, "if": {}})"),
              HasSubstr("'not', 'if'"));
  EXPECT_THAT(Error(GrammarKind::kJsonSchema, R"({"type": "strin"})"),
              HasSubstr("unknown type 'strin'"));
  EXPECT_THAT(Error(GrammarKind::kJsonSchema, R"({"$ref": "#/$defs/x"})"),
              HasSubstr("does not resolve"));
  EXPECT_THAT(Error(GrammarKind::kJsonSchema, R"({"type": )"), HasSubstr("invalid JSON"));
  EXPECT_THAT(Error(GrammarKind::kJsonSchema, R"({"type": "string", "pattern": "(a"})"),
              HasSubstr("pattern"));
}

TEST(GrammarCompilerTest, CachesBySpec) {
  GrammarCompiler c(ByteVocab());
  auto a = c.Compile({GrammarKind::kRegex, "ab+", {}});
  auto b = c.Compile({GrammarKind::kRegex, "ab+", {}});
  auto d = c.Compile({GrammarKind::kGbnf, "ab+", {}});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_FALSE(d.ok()) << "the same text as GBNF is a different spec";
}

}  // namespace
}  // namespace restkv::engine::structured
