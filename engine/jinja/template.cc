#include "engine/jinja/template.h"

#include "engine/jinja/builtins.h"
#include "engine/jinja/evaluator.h"
#include "engine/jinja/parser.h"

namespace restkv::engine::jinja {

absl::StatusOr<Template> Template::Parse(std::string_view source, const LexOptions& options) {
  absl::StatusOr<std::vector<Token>> tokens = Lex(source, options);
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<StmtList> body = jinja::Parse(*tokens);
  if (!body.ok()) return body.status();
  Template t;
  t.body_ = std::make_shared<const StmtList>(std::move(*body));
  return t;
}

absl::StatusOr<std::string> Template::Render(const Value& context,
                                             const RenderOptions& options) const {
  Value globals = Value::Dict();
  AddGlobals(globals.mutable_dict(), options.now);
  if (context.is_dict()) {
    for (const auto& [k, v] : context.dict().items()) globals.mutable_dict().Set(k, v);
  }
  return Evaluate(*body_, std::move(globals), options.max_output_bytes);
}

}  // namespace restkv::engine::jinja
