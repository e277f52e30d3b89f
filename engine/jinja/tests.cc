// Tests (`value is name(args)`), as jinja2 defines them.
#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "engine/jinja/builtins.h"

namespace restkv::engine::jinja {
namespace {

constexpr std::string_view kTests[] = {
    "defined",  "undefined", "none",    "boolean",     "false",    "true",        "integer",
    "float",    "number",    "string",  "mapping",     "iterable", "sequence",    "callable",
    "sameas",   "eq",        "equalto", "==",          "ne",       "!=",          "lt",
    "lessthan", "<",         "le",      "<=",          "gt",       "greaterthan", ">",
    "ge",       ">=",        "in",      "divisibleby", "even",     "odd",         "lower",
    "upper",    "escaped"};

absl::StatusOr<int> Order(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    return a.float_value() < b.float_value() ? -1 : (a.float_value() > b.float_value() ? 1 : 0);
  }
  if (a.is_string() && b.is_string())
    return a.string().compare(b.string()) < 0 ? -1 : (a.string() == b.string() ? 0 : 1);
  return absl::InvalidArgumentError(absl::StrCat("'<' not supported between instances of '",
                                                 a.TypeName(), "' and '", b.TypeName(), "'"));
}

}  // namespace

bool IsKnownTest(std::string_view name) {
  return std::find(std::begin(kTests), std::end(kTests), name) != std::end(kTests);
}

absl::StatusOr<bool> ApplyTest(std::string_view name, const Value& v, CallArgs& args) {
  const Value other = Arg(args, 0, "");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "false") return v.is_bool() && !v.bool_value();
  if (name == "true") return v.is_bool() && v.bool_value();
  if (name == "integer") return v.kind() == Value::Kind::kInt;
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict() && !v.is_namespace();
  if (name == "iterable") return v.is_string() || v.is_list() || v.is_dict();
  if (name == "sequence") return v.is_string() || v.is_list() || (v.is_dict() && !v.is_namespace());
  if (name == "callable") return v.is_callable();
  if (name == "sameas") {
    if (v.kind() != other.kind()) return false;
    if (v.is_none() || v.is_bool() || v.is_undefined()) return v.Equals(other);
    return v.Equals(other) && (v.is_int() || v.is_string());
  }
  if (name == "eq" || name == "equalto" || name == "==") return v.Equals(other);
  if (name == "ne" || name == "!=") return !v.Equals(other);
  if (name == "lt" || name == "lessthan" || name == "<" || name == "le" || name == "<=" ||
      name == "gt" || name == "greaterthan" || name == ">" || name == "ge" || name == ">=") {
    auto o = Order(v, other);
    if (!o.ok()) return o.status();
    if (name == "lt" || name == "lessthan" || name == "<") return *o < 0;
    if (name == "le" || name == "<=") return *o <= 0;
    if (name == "gt" || name == "greaterthan" || name == ">") return *o > 0;
    return *o >= 0;
  }
  if (name == "in") {
    if (other.is_string() && v.is_string())
      return other.string().find(v.string()) != std::string::npos;
    if (other.is_list()) {
      return std::any_of(other.list().begin(), other.list().end(),
                         [&](const Value& x) { return x.Equals(v); });
    }
    if (other.is_dict()) return v.is_string() && other.dict().Find(v.string()) != nullptr;
    return absl::InvalidArgumentError("'in' test needs a container");
  }
  if (name == "divisibleby" || name == "even" || name == "odd") {
    if (!v.is_int())
      return absl::InvalidArgumentError(absl::StrCat(std::string(name), " needs an integer"));
    const int64_t d = name == "divisibleby" ? (other.is_int() ? other.int_value() : 0) : 2;
    if (d == 0) return absl::InvalidArgumentError("integer division or modulo by zero");
    const bool divisible = v.int_value() % d == 0;
    return name == "odd" ? !divisible : divisible;
  }
  if (name == "lower" || name == "upper") {
    const std::string s = v.Str();
    return name == "lower" ? s == absl::AsciiStrToLower(s) : s == absl::AsciiStrToUpper(s);
  }
  if (name == "escaped") return false;
  return absl::InvalidArgumentError(absl::StrCat("unknown test '", std::string(name), "'"));
}

}  // namespace restkv::engine::jinja
