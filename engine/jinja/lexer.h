// Lexer: template source → tokens, with Jinja's whitespace rules applied.
//
// The source is split into text and tag tokens ({{ }}, {% %}, {# #} is
// dropped). Whitespace control follows jinja2 with the settings HF uses to
// render chat templates: `{%-`/`-%}` (and the same on `{{ }}`/`{# #}`) strip
// all whitespace on that side; trim_blocks drops the first newline after a
// block or comment tag; lstrip_blocks drops spaces and tabs between a line
// start and a block or comment tag; `{%+`/`+%}` opt out. As jinja2 does by
// default, "\r\n" becomes "\n" and one trailing newline of the source is
// removed. `{% raw %}…{% endraw %}` yields its content as text.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace restkv::engine::jinja {

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

struct Token {
  enum class Kind {
    kText,        // literal output; text holds it
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,        // identifier or keyword
    kString,      // text holds the decoded literal
    kInt,         // text holds digits
    kFloat,       // text holds the literal
    kOperator,    // text holds it: == != <= >= < > + - * / // % ** ~ | . , : ( ) [ ] { } =
    kEnd,         // end of the source
  };
  Kind kind;
  std::string text;
  int line;  // 1-based line in the template source
};

// InvalidArgument "line N: ..." for an unterminated tag, string or comment,
// or a character that cannot start a token.
absl::StatusOr<std::vector<Token>> Lex(std::string_view source, const LexOptions& options);

}  // namespace restkv::engine::jinja
