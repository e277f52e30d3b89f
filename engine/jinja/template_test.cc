// Unit tests of the Jinja interpreter's constructs and errors. The expected
// strings are what Python's jinja2 3.1 renders for the same source with
// trim_blocks and lstrip_blocks (each checked against jinja2 3.1.6); the real-template
// conformance is conformance_test.cc.
#include "engine/jinja/template.h"

#include "gtest/gtest.h"

namespace restkv::engine::jinja {
namespace {

std::string Render(std::string_view source, Value context = Value::Dict()) {
  absl::StatusOr<Template> t = Template::Parse(source);
  if (!t.ok()) return "PARSE ERROR: " + std::string(t.status().message());
  absl::StatusOr<std::string> out = t->Render(context);
  if (!out.ok()) return "RENDER ERROR: " + std::string(out.status().message());
  return *out;
}

Value Ctx(std::initializer_list<std::pair<std::string, Value>> vars) {
  Value d = Value::Dict();
  for (const auto& [k, v] : vars) d.mutable_dict().Set(k, v);
  return d;
}

TEST(JinjaTemplateTest, LoopVariablesAndElse) {
  const Value xs = Value::List({Value::String("a"), Value::String("b"), Value::String("c")});
  EXPECT_EQ(
      Render(
          "{% for x in xs %}{{ loop.index }}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}",
          Ctx({{"xs", xs}})),
      "1a,2b,3c");
  EXPECT_EQ(Render("{% for x in xs if x != 'b' %}{{ loop.index0 }}/{{ loop.length }}{{ "
                   "loop.cycle('o','e') }} {% endfor %}",
                   Ctx({{"xs", xs}})),
            "0/2o 1/2e ");
  EXPECT_EQ(Render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(Render("{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}"
                   "{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "13");
  EXPECT_EQ(Render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"),
            "a=1;b=2;");
}

TEST(JinjaTemplateTest, ScopesAndNamespace) {
  // A set inside a loop does not leak; a namespace attribute does.
  EXPECT_EQ(Render("{% set x = 1 %}{% for i in [1,2] %}{% set x = i * 10 %}{% endfor %}{{ x }}"),
            "1");
  EXPECT_EQ(Render("{% set ns = namespace(n=0) %}{% for i in [1,2,3] %}{% set ns.n = ns.n + i %}"
                   "{% endfor %}{{ ns.n }}"),
            "6");
  EXPECT_EQ(Render("{% if true %}{% set y = 'kept' %}{% endif %}{{ y }}"), "kept");
  EXPECT_EQ(Render("{% set a, b = [1, 2] %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(Render("{% set block %}in {{ 1 + 1 }}{% endset %}[{{ block }}]"), "[in 2]");
}

TEST(JinjaTemplateTest, MacrosAndCallBlocks) {
  EXPECT_EQ(Render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
                   "{{ greet('Bo') }} {{ greet('Al', punct='?') }}"),
            "Hi Bo! Hi Al?");
  EXPECT_EQ(
      Render("{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}body{% endcall %}"),
      "<body>");
}

TEST(JinjaTemplateTest, WhitespaceControl) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks the
  // indentation before it; '-' strips all whitespace on its side; '+' opts out.
  EXPECT_EQ(Render("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(Render("a   {%- if true -%}   b   {%- endif -%}   c"), "abc");
  EXPECT_EQ(Render("a\n  {%+ if true %}b{% endif +%}\nc"), "a\n  b\nc");
  EXPECT_EQ(Render("{{ 'x' }}\n{# comment #}\ny\n"), "x\ny");  // trailing newline removed
  EXPECT_EQ(Render("{% raw %}{{ not evaluated }}{% endraw %}"), "{{ not evaluated }}");
}

TEST(JinjaTemplateTest, ExpressionsFiltersAndTests) {
  EXPECT_EQ(Render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }}"),
            "3 -4 1 2 3.5 1024");
  EXPECT_EQ(Render("{{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ [1] + [2] }}"), "a1None ababab [1, 2]");
  EXPECT_EQ(Render("{{ {'k': [1, 'two', none, true, 1.5]} }}"),
            "{'k': [1, 'two', None, True, 1.5]}");
  EXPECT_EQ(Render("{{ {'k': [1, 'two', none, true, 1.5]} | tojson }}"),
            "{\"k\": [1, \"two\", null, true, 1.5]}");
  EXPECT_EQ(Render("{{ {'a': {'b': 1}} | tojson(indent=2) }}"),
            "{\n  \"a\": {\n    \"b\": 1\n  }\n}");
  EXPECT_EQ(Render("{{ 'héllo wörld'[1:4] }}|{{ [1,2,3,4][::-1] }}|{{ 'abc'[-1] }}"),
            "éll|[4, 3, 2, 1]|c");
  EXPECT_EQ(Render("{{ '  x  ' | trim }}|{{ 'a,b,,c'.split(',') }}|{{ 'xxhixx'.strip('x') }}"),
            "x|['a', 'b', '', 'c']|hi");
  EXPECT_EQ(
      Render(
          "{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith(('x', 'lo')) }} {{ 'a b'.upper() }}"),
      "True True A B");
  const Value msgs =
      Value::List({Ctx({{"role", Value::String("system")}}), Ctx({{"role", Value::String("user")}}),
                   Ctx({{"role", Value::String("user")}})});
  EXPECT_EQ(Render("{{ msgs | selectattr('role', 'equalto', 'user') | list | length }} "
                   "{{ msgs | map(attribute='role') | unique | join(',') }} "
                   "{{ msgs | rejectattr('role', 'eq', 'user') | list }}",
                   Ctx({{"msgs", msgs}})),
            "2 system,user [{'role': 'system'}]");
  EXPECT_EQ(Render("{{ x is defined }} {{ y is none }} {{ 's' is string }} {{ {} is mapping }} "
                   "{{ 3 is divisibleby 3 }} {{ x is not defined and 1 in [1] }}",
                   Ctx({{"y", Value::None()}})),
            "False True True True True True");
  EXPECT_EQ(
      Render(
          "{{ d.missing }}|{{ d.get('missing', 'dflt') }}|{{ undefined_var }}|{{ 'z' if false }}",
          Ctx({{"d", Value::Dict()}})),
      "|dflt||");
  EXPECT_EQ(Render("{% for k, v in {'b': 1, 'a': 2} | dictsort %}{{ k }}{{ v }}{% endfor %} "
                   "{{ [3, 1, 2] | sort }} {{ x | default('d') }}"),
            "a2b1 [1, 2, 3] d");
  EXPECT_EQ(Render("{{ '%s-%d' | format('a', 3) }} {{ 'ab\\ncd' | indent(2) }}"), "a-3 ab\n  cd");
}

TEST(JinjaTemplateTest, ErrorsNameTheLine) {
  EXPECT_EQ(Render("line one\n{{ foo.bar }}"),
            "RENDER ERROR: line 2: 'foo' is undefined (reading attribute 'bar')");
  EXPECT_EQ(Render("a\nb\n{{ raise_exception('bad roles') }}"),
            "RENDER ERROR: line 3: template raised: bad roles");
  EXPECT_EQ(Render("{% if x %}\n{{ x | nosuchfilter }}{% endif %}", Ctx({{"x", Value::Int(1)}})),
            "RENDER ERROR: line 2: unknown filter 'nosuchfilter'");
  EXPECT_EQ(Render("\n\n{% if x %}never closed"), "PARSE ERROR: line 3: missing {% elif %}");
  EXPECT_EQ(Render("{{ 1 + }}"), "PARSE ERROR: line 1: expected an expression but found '}}'");
  EXPECT_EQ(Render("{% frobnicate %}"), "PARSE ERROR: line 1: unknown tag 'frobnicate'");
  EXPECT_EQ(Render("x\n{{ 'unterminated }}"), "PARSE ERROR: line 2: unterminated string literal");
  EXPECT_EQ(Render("{{ 1 / 0 }}"), "RENDER ERROR: line 1: division by zero");
  EXPECT_EQ(Render("{% set x = 5 %}{% set x.y = 1 %}"),
            "RENDER ERROR: line 1: cannot assign attribute on non-namespace object 'x'");
  EXPECT_EQ(Render("{{ none | length }}"),
            "RENDER ERROR: line 1: object of type 'NoneType' has no len()");
  // The immutable sandbox HF renders in has no list.append.
  EXPECT_EQ(Render("{% set l = [] %}{{ l.append(1) }}"),
            "RENDER ERROR: line 1: 'append' is undefined");
}

TEST(JinjaTemplateTest, RunawayOutputIsBounded) {
  absl::StatusOr<Template> t = Template::Parse(
      "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx{% endfor %}{% endfor %}");
  ASSERT_TRUE(t.ok());
  RenderOptions options;
  options.max_output_bytes = 1 << 20;
  EXPECT_EQ(t->Render(Value::Dict(), options).status().code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace restkv::engine::jinja
