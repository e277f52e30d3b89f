// Template: a parsed Jinja template, rendered against a context of Values.
//
// A small interpreter for the Jinja subset HF chat templates use (see
// parser.h for the syntax, builtins.h for filters, tests and globals),
// rendering byte for byte what Python's jinja2 renders under the settings
// transformers uses for apply_chat_template: trim_blocks, lstrip_blocks,
// loop controls, HF's tojson, raise_exception and strftime_now. Not
// supported (a parse or render error says so): template inheritance and
// includes, recursive loops, chained comparisons, autoescaping.
//
// Errors carry the template line: "line 12: unknown filter 'foo'". A
// render that calls raise_exception fails with "line N: template raised:
// <message>".
//
// Thread safety: a Template is immutable after Parse and may be rendered
// from several threads at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/jinja/ast.h"
#include "engine/jinja/lexer.h"
#include "engine/jinja/value.h"

namespace restkv::engine::jinja {

struct RenderOptions {
  absl::Time now = absl::UnixEpoch();  // what strftime_now formats (UTC)
  size_t max_output_bytes = 64 << 20;  // a runaway template fails instead of exhausting memory
};

class Template {
 public:
  static absl::StatusOr<Template> Parse(std::string_view source, const LexOptions& options = {});

  // Renders with `context` (a dict) as the top-level variables.
  absl::StatusOr<std::string> Render(const Value& context, const RenderOptions& options = {}) const;

 private:
  std::shared_ptr<const StmtList> body_;
};

}  // namespace restkv::engine::jinja
