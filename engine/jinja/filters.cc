// Filters (`value | name(args)`), as jinja2 defines them, with HF's tojson.
#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/jinja/builtins.h"

namespace restkv::engine::jinja {
namespace {

absl::Status Err(const std::string& what) { return absl::InvalidArgumentError(what); }

CallArgs Positional(ValueList items) {
  CallArgs a;
  a.positional = std::move(items);
  return a;
}

// Arguments after the first `skip` positional ones, for select/map.
CallArgs Rest(const CallArgs& args, size_t skip) {
  CallArgs out;
  for (size_t i = skip; i < args.positional.size(); ++i)
    out.positional.push_back(args.positional[i]);
  out.keyword = args.keyword;
  return out;
}

// Dotted attribute paths ("function.name") as jinja's attribute= accepts.
absl::StatusOr<Value> GetPath(const Value& obj, const Value& path) {
  if (path.is_int()) return GetItem(obj, path);
  if (!path.is_string()) return Err("attribute must be a string");
  Value cur = obj;
  size_t start = 0;
  const std::string& p = path.string();
  while (true) {
    const size_t dot = p.find('.', start);
    const std::string part =
        p.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    absl::StatusOr<Value> next = GetItem(cur, Value::String(part));
    if (!next.ok()) return next;
    cur = *next;
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// Ordering for sort/min/max (case-insensitive strings unless asked).
absl::StatusOr<int> Compare(const Value& a, const Value& b, bool case_sensitive) {
  if (a.is_number() && b.is_number()) {
    const double x = a.float_value(), y = b.float_value();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const std::string x = case_sensitive ? a.string() : absl::AsciiStrToLower(a.string());
    const std::string y = case_sensitive ? b.string() : absl::AsciiStrToLower(b.string());
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  return Err(absl::StrCat("'<' not supported between instances of '", a.TypeName(), "' and '",
                          b.TypeName(), "'"));
}

absl::StatusOr<Value> SelectOrReject(const Value& seq, const CallArgs& args, bool by_attr,
                                     bool keep) {
  // jinja2 iterates only a truthy sequence (none | selectattr(...) is empty).
  if (!seq.Truthy()) return Value::Generator({});
  auto items = Iterate(seq);
  if (!items.ok()) return items.status();
  ValueList out;
  const size_t test_pos = by_attr ? 1 : 0;
  const Value attr = by_attr ? Arg(args, 0, "attribute") : Value();
  const Value test = Arg(args, test_pos, "test");
  CallArgs test_args = Rest(args, test_pos + 1);
  test_args.keyword.clear();
  for (const Value& item : *items) {
    Value subject = item;
    if (by_attr) {
      auto v = GetPath(item, attr);
      if (!v.ok()) return v.status();
      subject = *v;
    }
    bool pass;
    if (test.is_undefined() || test.is_none()) {
      pass = subject.Truthy();
    } else {
      if (!test.is_string()) return Err("the test name must be a string");
      CallArgs a = test_args;
      auto r = ApplyTest(test.string(), subject, a);
      if (!r.ok()) return r.status();
      pass = *r;
    }
    if (pass == keep) out.push_back(item);
  }
  return Value::Generator(std::move(out));
}

absl::StatusOr<Value> Map(const Value& seq, const CallArgs& args) {
  if (!seq.Truthy()) return Value::Generator({});
  auto items = Iterate(seq);
  if (!items.ok()) return items.status();
  ValueList out;
  const Value attr = Arg(args, 99, "attribute");
  if (!attr.is_undefined()) {
    const Value fallback = Arg(args, 99, "default");
    for (const Value& item : *items) {
      auto v = GetPath(item, attr);
      if (!v.ok()) return v.status();
      out.push_back(v->is_undefined() && !fallback.is_undefined() ? fallback : *v);
    }
    return Value::Generator(std::move(out));
  }
  const Value filter = Arg(args, 0, "");
  if (!filter.is_string()) return Err("map() needs a filter name or attribute=");
  for (const Value& item : *items) {
    CallArgs a = Rest(args, 1);
    auto v = ApplyFilter(filter.string(), item, a);
    if (!v.ok()) return v.status();
    out.push_back(*v);
  }
  return Value::Generator(std::move(out));
}

absl::StatusOr<Value> ToJsonFilter(const Value& v, const CallArgs& args) {
  const Value indent = Arg(args, 99, "indent", Value::None());
  const Value sort_keys = Arg(args, 99, "sort_keys", Value::Bool(false));
  const Value ensure_ascii = Arg(args, 99, "ensure_ascii", Value::Bool(false));
  if (!Arg(args, 99, "separators").is_undefined())
    return Err("tojson: separators= is not supported");
  int width = -1;
  if (!args.positional.empty()) {
    if (!args.positional[0].is_int()) return Err("tojson: indent must be an integer");
    width = static_cast<int>(args.positional[0].int_value());
  } else if (indent.is_int()) {
    width = static_cast<int>(indent.int_value());
  }
  auto text = v.ToJson(width, sort_keys.Truthy());
  if (!text.ok()) return text.status();
  if (!ensure_ascii.Truthy()) return Value::String(*text);
  // ensure_ascii: non-ASCII characters as \uXXXX (surrogate pairs above U+FFFF).
  std::string out;
  for (const std::string& cp : SplitCodePoints(*text)) {
    if (cp.size() == 1) {
      out += cp;
      continue;
    }
    uint32_t c = 0;
    const auto b = [&](size_t i) {
      return static_cast<uint32_t>(static_cast<unsigned char>(cp[i]));
    };
    if (cp.size() == 2) c = ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    if (cp.size() == 3) c = ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    if (cp.size() == 4) {
      c = ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    }
    if (c >= 0x10000) {
      c -= 0x10000;
      absl::StrAppendFormat(&out, "\\u%04x\\u%04x", 0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF));
    } else {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    }
  }
  return Value::String(out);
}

std::string Indent(const std::string& s, const std::string& pad, bool first, bool blank) {
  std::string out;
  size_t start = 0;
  bool first_line = true;
  while (true) {
    const size_t nl = s.find('\n', start);
    const std::string line =
        s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    const bool do_pad = (first_line ? first : true) && (blank || !line.empty());
    if (do_pad) out += pad;
    out += line;
    if (nl == std::string::npos) break;
    out += '\n';
    start = nl + 1;
    first_line = false;
  }
  return out;
}

// Python's "%s %d" % args for the format filter.
absl::StatusOr<Value> Format(const std::string& fmt, const CallArgs& args) {
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (i + 1 >= fmt.size()) return Err("format: incomplete format");
    const char c = fmt[++i];
    if (c == '%') {
      out += '%';
      continue;
    }
    if (next >= args.positional.size()) return Err("format: not enough arguments");
    const Value& v = args.positional[next++];
    if (c == 's') {
      out += v.Str();
    } else if (c == 'r') {
      out += v.Repr();
    } else if (c == 'd' || c == 'i') {
      if (!v.is_number()) return Err("format: %d needs a number");
      absl::StrAppend(&out, static_cast<int64_t>(v.float_value()));
    } else {
      return Err(absl::StrCat("format: unsupported conversion %", std::string(1, c)));
    }
  }
  return Value::String(out);
}

}  // namespace

absl::StatusOr<Value> ApplyFilter(std::string_view name, const Value& v, CallArgs& args) {
  if (name == "trim") {
    CallArgs a = Positional({Arg(args, 0, "chars")});
    return GetAttr(Value::String(v.Str()), "strip").value().callable()(a);
  }
  if (name == "length" || name == "count") {
    switch (v.kind()) {
      case Value::Kind::kUndefined:
        return Value::Int(0);
      case Value::Kind::kString:
        return Value::Int(static_cast<int64_t>(CodePointLength(v.string())));
      case Value::Kind::kList:
        if (v.is_generator()) return Err("object of type 'generator' has no len()");
        return Value::Int(static_cast<int64_t>(v.list().size()));
      case Value::Kind::kDict:
        return Value::Int(static_cast<int64_t>(v.dict().size()));
      default:
        return Err(absl::StrCat("object of type '", v.TypeName(), "' has no len()"));
    }
  }
  if (name == "upper") return Value::String(absl::AsciiStrToUpper(v.Str()));
  if (name == "lower") return Value::String(absl::AsciiStrToLower(v.Str()));
  if (name == "capitalize" || name == "title") {
    CallArgs none;
    return GetAttr(Value::String(v.Str()), name).value().callable()(none);
  }
  if (name == "string") return Value::String(v.Str());
  if (name == "safe") {
    if (v.is_undefined()) return Value::Markup("");
    return v.is_string() ? Value::Markup(v.string()) : Value::Markup(v.Str());
  }
  if (name == "escape" || name == "e") {
    if (v.is_markup()) return v;
    return Value::Markup(HtmlEscape(v.Str()));
  }
  if (name == "tojson") return ToJsonFilter(v, args);
  if (name == "join") {
    auto items = Iterate(v);
    if (!items.ok()) return items.status();
    const Value sep = Arg(args, 0, "d", Value::String(""));
    const Value attr = Arg(args, 1, "attribute");
    std::string out;
    for (size_t i = 0; i < items->size(); ++i) {
      if (i > 0) out += sep.Str();
      Value item = (*items)[i];
      if (!attr.is_undefined()) {
        auto a = GetPath(item, attr);
        if (!a.ok()) return a.status();
        item = *a;
      }
      out += item.Str();
    }
    return Value::String(out);
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::List();
    if (!v.is_dict()) return Err("items filter needs a mapping");
    CallArgs none;
    return GetAttr(v, "items").value().callable()(none);
  }
  if (name == "list") {
    auto items = Iterate(v);
    if (!items.ok()) return items.status();
    return Value::List(*items);
  }
  if (name == "selectattr") return SelectOrReject(v, args, true, true);
  if (name == "rejectattr") return SelectOrReject(v, args, true, false);
  if (name == "select") return SelectOrReject(v, args, false, true);
  if (name == "reject") return SelectOrReject(v, args, false, false);
  if (name == "map") return Map(v, args);
  if (name == "default" || name == "d") {
    const Value fallback = Arg(args, 0, "default_value", Value::String(""));
    const bool boolean = Arg(args, 1, "boolean", Value::Bool(false)).Truthy();
    if (v.is_undefined() || (boolean && !v.Truthy())) return fallback;
    return v;
  }
  if (name == "replace") {
    CallArgs a = args;
    return GetAttr(Value::String(v.Str()), "replace").value().callable()(a);
  }
  if (name == "first" || name == "last") {
    auto items = Iterate(v);
    if (!items.ok()) return items.status();
    if (items->empty()) return Value::Undefined("first");
    return name == "first" ? items->front() : items->back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::vector<std::string> cps = SplitCodePoints(v.string());
      std::reverse(cps.begin(), cps.end());
      std::string out;
      for (const auto& cp : cps) out += cp;
      return Value::String(out);
    }
    auto items = Iterate(v);
    if (!items.ok()) return items.status();
    std::reverse(items->begin(), items->end());
    return Value::List(*items);
  }
  if (name == "unique") {
    auto items = Iterate(v);
    if (!items.ok()) return items.status();
    const bool case_sensitive = Arg(args, 0, "case_sensitive", Value::Bool(false)).Truthy();
    ValueList out;
    std::vector<Value> seen;
    for (const Value& item : *items) {
      Value key = item;
      if (!case_sensitive && item.is_string())
        key = Value::String(absl::AsciiStrToLower(item.string()));
      if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return s.Equals(key); })) {
        seen.push_back(key);
        out.push_back(item);
      }
    }
    return Value::List(std::move(out));
  }
  if (name == "sort" || name == "min" || name == "max" || name == "dictsort") {
    const bool dict = name == "dictsort";
    ValueList items;
    if (dict) {
      if (!v.is_dict()) return Err("dictsort needs a mapping");
      CallArgs none;
      auto kv = GetAttr(v, "items").value().callable()(none);
      if (!kv.ok()) return kv.status();
      items = kv->list();
    } else {
      auto it = Iterate(v);
      if (!it.ok()) return it.status();
      items = *it;
    }
    const bool reverse = Arg(args, dict ? 2 : 0, "reverse", Value::Bool(false)).Truthy();
    const bool case_sensitive =
        Arg(args, dict ? 0 : (name == "sort" ? 1 : 0), "case_sensitive", Value::Bool(false))
            .Truthy();
    const Value attr = Arg(args, name == "sort" ? 2 : 99, "attribute");
    const bool by_value = dict && Arg(args, 1, "by", Value::String("key")).Str() == "value";
    absl::Status error;
    const auto key_of = [&](const Value& item) -> Value {
      if (dict) return item.list()[by_value ? 1 : 0];
      if (attr.is_undefined()) return item;
      auto a = GetPath(item, attr);
      if (!a.ok()) {
        error = a.status();
        return Value();
      }
      return *a;
    };
    const auto less = [&](const Value& a, const Value& b) {
      auto c = Compare(key_of(a), key_of(b), case_sensitive);
      if (!c.ok()) {
        error = c.status();
        return false;
      }
      return *c < 0;
    };
    if (name == "min" || name == "max") {
      if (items.empty()) return Value::Undefined("min");
      auto it = name == "min" ? std::min_element(items.begin(), items.end(), less)
                              : std::max_element(items.begin(), items.end(), less);
      if (!error.ok()) return error;
      return *it;
    }
    std::stable_sort(items.begin(), items.end(), less);
    if (!error.ok()) return error;
    if (reverse) std::reverse(items.begin(), items.end());
    return Value::List(std::move(items));
  }
  if (name == "int") {
    if (v.is_int()) return Value::Int(v.int_value());
    if (v.is_float()) return Value::Int(static_cast<int64_t>(v.float_value()));
    if (v.is_string()) {
      char* end = nullptr;
      const std::string s(absl::StripAsciiWhitespace(v.string()));
      const long long i = std::strtoll(s.c_str(), &end, 10);
      if (end != s.c_str() && *end == '\0') return Value::Int(i);
    }
    return Arg(args, 0, "default", Value::Int(0));
  }
  if (name == "float") {
    if (v.is_number()) return Value::Float(v.float_value());
    if (v.is_string()) {
      char* end = nullptr;
      const double d = std::strtod(v.string().c_str(), &end);
      if (end != v.string().c_str() && *end == '\0') return Value::Float(d);
    }
    return Arg(args, 0, "default", Value::Float(0));
  }
  if (name == "abs") {
    if (v.is_float()) return Value::Float(std::fabs(v.float_value()));
    if (v.is_int()) return Value::Int(v.int_value() < 0 ? -v.int_value() : v.int_value());
    return Err("bad operand type for abs()");
  }
  if (name == "round") {
    if (!v.is_number()) return Err("round needs a number");
    const int64_t precision = Arg(args, 0, "precision", Value::Int(0)).int_value();
    const std::string method = Arg(args, 1, "method", Value::String("common")).Str();
    const double scale = std::pow(10.0, static_cast<double>(precision));
    double x = v.float_value() * scale;
    x = method == "floor" ? std::floor(x) : method == "ceil" ? std::ceil(x) : std::round(x);
    return Value::Float(x / scale);
  }
  if (name == "sum") {
    auto items = Iterate(v);
    if (!items.ok()) return items.status();
    const Value attr = Arg(args, 0, "attribute");
    Value total = Arg(args, 1, "start", Value::Int(0));
    for (Value item : *items) {
      if (!attr.is_undefined()) {
        auto a = GetPath(item, attr);
        if (!a.ok()) return a.status();
        item = *a;
      }
      if (!item.is_number() || !total.is_number()) return Err("sum needs numbers");
      total = item.is_float() || total.is_float()
                  ? Value::Float(total.float_value() + item.float_value())
                  : Value::Int(total.int_value() + item.int_value());
    }
    return total;
  }
  if (name == "indent") {
    const Value width = Arg(args, 0, "width", Value::Int(4));
    const std::string pad = width.is_string()
                                ? width.string()
                                : std::string(static_cast<size_t>(width.int_value()), ' ');
    return Value::String(Indent(v.Str(), pad, Arg(args, 1, "first", Value::Bool(false)).Truthy(),
                                Arg(args, 2, "blank", Value::Bool(false)).Truthy()));
  }
  if (name == "format") return Format(v.Str(), args);
  if (name == "wordcount") {
    CallArgs none;
    auto words = GetAttr(Value::String(v.Str()), "split").value().callable()(none);
    if (!words.ok()) return words.status();
    return Value::Int(static_cast<int64_t>(words->list().size()));
  }
  if (name == "attr") {
    const Value n = Arg(args, 0, "name");
    if (!n.is_string()) return Err("attr needs a name");
    return GetAttr(v, n.string());
  }
  return Err(absl::StrCat("unknown filter '", std::string(name), "'"));
}

}  // namespace restkv::engine::jinja
