// RegexToGbnf: a regular expression (Python `re` syntax, the subset that
// describes a regular language) as a GBNF expression matching the same
// strings in full (the pattern is anchored at both ends; `^` and `$` at the
// ends are accepted and change nothing).
//
// Supported: literals; `.` (any character but "\n"); classes `[a-z]`,
// `[^...]` with ranges and escapes; \d \w \s \D \W \S (ASCII sets: output
// is ASCII-constrained, which Python's Unicode-aware classes also accept);
// \n \r \t \f \v \0 \xHH \uHHHH and escaped punctuation; groups `( )`,
// `(?: )`, `(?P<n> )`, `(?<n> )`; `|`; `* + ? {m} {m,} {m,n}` (a lazy `?` or
// possessive `+` suffix matches the same strings and is accepted).
// Unsupported, an error naming it: backreferences, lookaround, inline flags,
// \b \B \A \Z, conditionals.
//
// JSON string mode (`json_string`): the expression matches the *body of a
// JSON string literal* whose decoded value matches the regex, for the
// `pattern` keyword of JSON Schema: `"` and `\` become their escapes \" and
// \\, "\n" "\t" "\r" become \n \t \r, and other control characters are left out.
//
// Thread safety: pure function.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace restkv::engine::structured {

// The GBNF expression (no rule name), or InvalidArgument naming the
// position and the problem.
absl::StatusOr<std::string> RegexToGbnf(std::string_view regex, bool json_string = false);

// `bytes` as a GBNF string literal, quotes included.
std::string GbnfLiteral(std::string_view bytes);

}  // namespace restkv::engine::structured
