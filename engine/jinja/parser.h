// Parser: tokens (engine/jinja/lexer.h) → statement tree (ast.h).
//
// Statements: if/elif/else, for (tuple targets, `if` filter, else,
// loop controls break/continue), set (name, tuple, namespace attribute,
// block form), macro, call, filter blocks, and HF's generation/endgeneration
// markers (rendered as their body). Expressions follow jinja2's precedence:
// conditional < or < and < not < comparison (chained) < + - < ~ < * / // %
// < ** < unary - + < postfix (.attr, [i], [a:b:c], calls) < filters and
// `is` tests.
//
// Thread safety: pure function.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "engine/jinja/ast.h"
#include "engine/jinja/lexer.h"

namespace restkv::engine::jinja {

// InvalidArgument "line N: ..." naming what was expected.
absl::StatusOr<StmtList> Parse(const std::vector<Token>& tokens);

}  // namespace restkv::engine::jinja
