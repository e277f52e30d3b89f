// Evaluator: walks a statement tree (ast.h) and writes the output text.
//
// Scopes follow jinja2: a for-loop body and a macro call get their own
// scope (assignments inside do not leak out; namespace() objects are how
// templates carry state out of a loop), `if` blocks do not. `loop` holds
// index, index0, revindex, revindex0, first, last, length, previtem,
// nextitem and cycle(). Errors are prefixed with the line of the node.
//
// Thread safety: one Evaluator per render.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "engine/jinja/ast.h"
#include "engine/jinja/value.h"

namespace restkv::engine::jinja {

// Renders `body` with `globals` (functions and the caller's variables) as
// the outermost scope.
absl::StatusOr<std::string> Evaluate(const StmtList& body, Value globals, size_t max_output_bytes);

}  // namespace restkv::engine::jinja
