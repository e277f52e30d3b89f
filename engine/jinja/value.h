// Value: the dynamic value of the Jinja interpreter (engine/jinja/).
//
// Jinja templates manipulate Python objects; this type models the ones chat
// templates meet: undefined, None, bool, int, float, str, list, dict (keys
// are strings, insertion order kept, as Python dicts and JSON documents),
// callables (macros, builtins, bound methods) and namespace() objects.
// Lists, dicts and namespaces are shared by reference, as in Python, so a
// `namespace` mutated inside a loop is seen outside it.
//
// Text conversions follow Python: Str() is str(x) (what `{{ x }}` prints;
// undefined prints as ""), Repr() is repr(x) (how a list prints its items),
// and ToJson() is json.dumps(x, ensure_ascii=False) as HF's tojson filter
// calls it.
//
// Thread safety: a Value is not synchronised; templates render on one
// thread, and a parsed Template holds no Values.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace restkv::engine::jinja {

class Value;
using ValueList = std::vector<Value>;

class ValueMap;
struct CallArgs;
using Callable = std::function<absl::StatusOr<Value>(CallArgs&)>;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kCallable };

  Value() = default;  // undefined
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double d);
  static Value String(std::string s);
  // A string marked safe (jinja2's Markup, from |safe or |escape): adding a
  // plain string to it HTML-escapes that string.
  static Value Markup(std::string s);
  static Value List(ValueList items = {});
  // What jinja2's select/reject/map filters return: a generator. It iterates
  // like a list but is always truthy, has no length, cannot be indexed or
  // serialised; `| list` turns it into a list.
  static Value Generator(ValueList items);
  static Value Dict();
  // A namespace() object: a dict whose attributes may be assigned.
  static Value Namespace();
  static Value Function(std::string name, Callable fn);
  // An undefined value that remembers what was looked up, for error messages.
  static Value Undefined(std::string hint);

  [[nodiscard]] Kind kind() const { return kind_; }
  [[nodiscard]] bool is_undefined() const { return kind_ == Kind::kUndefined; }
  [[nodiscard]] bool is_none() const { return kind_ == Kind::kNone; }
  [[nodiscard]] bool is_bool() const { return kind_ == Kind::kBool; }
  [[nodiscard]] bool is_int() const { return kind_ == Kind::kInt || kind_ == Kind::kBool; }
  [[nodiscard]] bool is_number() const { return is_int() || kind_ == Kind::kFloat; }
  [[nodiscard]] bool is_float() const { return kind_ == Kind::kFloat; }
  [[nodiscard]] bool is_string() const { return kind_ == Kind::kString; }
  [[nodiscard]] bool is_markup() const { return kind_ == Kind::kString && markup_; }
  [[nodiscard]] bool is_list() const { return kind_ == Kind::kList; }
  [[nodiscard]] bool is_generator() const { return kind_ == Kind::kList && generator_; }
  [[nodiscard]] bool is_dict() const { return kind_ == Kind::kDict; }
  [[nodiscard]] bool is_namespace() const { return kind_ == Kind::kDict && namespace_; }
  [[nodiscard]] bool is_callable() const { return kind_ == Kind::kCallable; }

  // REQUIRES the matching kind.
  [[nodiscard]] bool bool_value() const { return int_ != 0; }
  [[nodiscard]] int64_t int_value() const { return int_; }
  [[nodiscard]] double float_value() const {
    return kind_ == Kind::kFloat ? float_ : static_cast<double>(int_);
  }
  [[nodiscard]] const std::string& string() const { return *string_; }
  [[nodiscard]] const ValueList& list() const { return *list_; }
  ValueList& mutable_list() { return *list_; }
  [[nodiscard]] const ValueMap& dict() const { return *dict_; }
  ValueMap& mutable_dict() { return *dict_; }
  [[nodiscard]] const Callable& callable() const { return *callable_; }
  [[nodiscard]] const std::string& name() const { return *string_; }  // callable or hint

  // Python truthiness (undefined is false).
  [[nodiscard]] bool Truthy() const;
  // Python ==, with int/float/bool comparing numerically.
  [[nodiscard]] bool Equals(const Value& other) const;
  // str(x) and repr(x).
  [[nodiscard]] std::string Str() const;
  [[nodiscard]] std::string Repr() const;
  // json.dumps(x, ensure_ascii=False, indent=indent, sort_keys=sort_keys);
  // indent < 0 means none. InvalidArgument for values JSON cannot hold.
  [[nodiscard]] absl::StatusOr<std::string> ToJson(int indent = -1, bool sort_keys = false) const;
  // "str", "int", "list", ... as Python's type(x).__name__ says.
  [[nodiscard]] std::string TypeName() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool namespace_ = false;
  bool generator_ = false;
  bool markup_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::shared_ptr<const std::string> string_;
  std::shared_ptr<ValueList> list_;
  std::shared_ptr<ValueMap> dict_;
  std::shared_ptr<const Callable> callable_;
};

// Positional and keyword arguments of a call.
struct CallArgs {
  ValueList positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// An insertion-ordered string-keyed map (Python dict / JSON object).
class ValueMap {
 public:
  [[nodiscard]] const Value* Find(std::string_view key) const;
  Value* Find(std::string_view key);
  void Set(std::string key, Value value);
  [[nodiscard]] const std::vector<std::pair<std::string, Value>>& items() const { return items_; }
  [[nodiscard]] size_t size() const { return items_.size(); }

 private:
  std::vector<std::pair<std::string, Value>> items_;
};

// Python's repr of a float ("1.0", "0.1", "1e-05", "inf").
std::string PythonFloatRepr(double d);

// The string as a Python repr literal ('it\'s' → "it's" in double quotes, as Python picks).
std::string PythonStringRepr(std::string_view s);

// markupsafe's escape(): & < > " ' as entities.
std::string HtmlEscape(std::string_view s);

// A JSON string literal as json.dumps(ensure_ascii=False) writes it.
std::string JsonStringLiteral(std::string_view s);

}  // namespace restkv::engine::jinja
