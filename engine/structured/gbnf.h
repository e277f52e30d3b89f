// GBNF: the grammar format of llama.cpp (grammars/README.md there), parsed
// into a byte-level Grammar. This is the one context-free grammar format the
// API accepts (`guided_grammar`), and the form the regex and JSON Schema
// front ends emit.
//
// Supported, as llama.cpp documents it:
//   name ::= alternatives          one rule per line; the start rule is `root`
//   "literal"  [a-z0-9_] [^"\\]    strings and character classes (code points)
//   .                              any character
//   ( ... )  a | b                 grouping, alternation
//   x* x+ x? x{m} x{m,} x{m,n} x{,n}   repetition
//   # comment                      to the end of the line
// Escapes in literals and classes: \n \r \t \\ \" \[ \] \- \^ \xHH \uHHHH
// \UHHHHHHHH (all name code points, not bytes). Newlines may follow `::=`,
// `|` and appear anywhere inside parentheses; a line that starts with `|`
// continues the previous rule. Rule names are [A-Za-z0-9_-]+.
// Not supported: left recursion (as in llama.cpp), token references (<[id]>).
//
// Thread safety: pure function.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "engine/structured/grammar.h"

namespace restkv::engine::structured {

// The grammar, or InvalidArgument with the line and column of the first
// syntax error, an undefined rule, a missing `root`, or left recursion.
absl::StatusOr<Grammar> ParseGbnf(std::string_view text);

}  // namespace restkv::engine::structured
