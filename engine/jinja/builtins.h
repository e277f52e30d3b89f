// The built-in library of the Jinja interpreter: attribute lookup and the
// Python methods templates call (methods.cc), filters (filters.cc), tests
// (tests.cc) and global functions (globals.cc).
//
// Semantics follow jinja2 under HF's ImmutableSandboxedEnvironment: a
// missing attribute or key gives undefined (reading through an undefined
// value is an error), lists and dicts cannot be mutated through methods
// (append, update, ... do not exist), and tojson is HF's
// json.dumps(ensure_ascii=False) filter. Errors are plain messages; the
// evaluator adds the template line.
//
// Thread safety: pure functions over their arguments.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/jinja/value.h"

namespace restkv::engine::jinja {

// obj.name: a dict member, a string/dict method bound to obj, or undefined.
// Error when obj is undefined.
absl::StatusOr<Value> GetAttr(const Value& obj, std::string_view name);
// obj[key]: list/string index (negative from the end), dict member, or
// undefined; falls back to GetAttr for string keys on non-dicts.
absl::StatusOr<Value> GetItem(const Value& obj, const Value& key);
// obj[start:stop:step] on a list or string (null Values mean omitted).
absl::StatusOr<Value> GetSlice(const Value& obj, const Value& start, const Value& stop,
                               const Value& step);

// The items a for loop visits: list elements, dict keys, string characters;
// undefined iterates as empty. Error for other kinds.
absl::StatusOr<ValueList> Iterate(const Value& v);

// |name(args): NotFound-style InvalidArgument for an unknown filter.
absl::StatusOr<Value> ApplyFilter(std::string_view name, const Value& operand, CallArgs& args);
// `is name(args)`.
absl::StatusOr<bool> ApplyTest(std::string_view name, const Value& operand, CallArgs& args);
// Whether `name` is a known test (for `is defined` style checks in filters).
bool IsKnownTest(std::string_view name);

// The global functions: range, namespace, dict, raise_exception,
// strftime_now (formats `now` in UTC, as HF's helper formats the local
// clock).
void AddGlobals(ValueMap& globals, absl::Time now);

// Python str methods and len() over UTF-8 code points.
std::vector<std::string> SplitCodePoints(std::string_view s);
size_t CodePointLength(std::string_view s);

// An argument by position or keyword, or `fallback`.
Value Arg(const CallArgs& args, size_t position, std::string_view keyword,
          Value fallback = Value());

}  // namespace restkv::engine::jinja
