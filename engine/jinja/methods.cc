// Attribute and item lookup, iteration, and the str/dict methods chat
// templates call.
#include <algorithm>
#include <cctype>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/jinja/builtins.h"

namespace restkv::engine::jinja {
namespace {

absl::Status Err(const std::string& what) { return absl::InvalidArgumentError(what); }

size_t Utf8Len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

uint32_t DecodeOne(std::string_view cp) {
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(cp[i])); };
  switch (cp.size()) {
    case 2:
      return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3:
      return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    case 4:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    default:
      return b(0);
  }
}

// Python's str.isspace() for one code point.
bool IsPythonSpace(std::string_view cp) {
  const uint32_t c = DecodeOne(cp);
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

std::string StripChars(std::string_view s, const Value& chars, bool left, bool right) {
  const std::vector<std::string> cps = SplitCodePoints(s);
  std::vector<std::string> set;
  if (chars.is_string()) set = SplitCodePoints(chars.string());
  const auto strip = [&](const std::string& cp) {
    if (chars.is_string()) return std::find(set.begin(), set.end(), cp) != set.end();
    return IsPythonSpace(cp);
  };
  size_t first = 0, last = cps.size();
  if (left) {
    while (first < last && strip(cps[first])) ++first;
  }
  if (right) {
    while (last > first && strip(cps[last - 1])) --last;
  }
  std::string out;
  for (size_t i = first; i < last; ++i) out += cps[i];
  return out;
}

Value StringList(const std::vector<std::string>& parts) {
  ValueList out;
  out.reserve(parts.size());
  for (const std::string& p : parts) out.push_back(Value::String(p));
  return Value::List(std::move(out));
}

absl::StatusOr<Value> Split(const std::string& s, const CallArgs& args, bool from_right) {
  const Value sep = Arg(args, 0, "sep", Value::None());
  const Value max = Arg(args, 1, "maxsplit", Value::Int(-1));
  int64_t maxsplit = max.is_int() ? max.int_value() : -1;
  std::vector<std::string> parts;
  if (sep.is_none() || sep.is_undefined()) {
    // Runs of whitespace separate; leading/trailing whitespace is dropped.
    const std::vector<std::string> cps = SplitCodePoints(s);
    std::vector<std::string> words;
    std::string cur;
    bool in_word = false;
    for (const std::string& cp : cps) {
      if (IsPythonSpace(cp)) {
        if (in_word) words.push_back(cur);
        cur.clear();
        in_word = false;
      } else {
        cur += cp;
        in_word = true;
      }
    }
    if (in_word) words.push_back(cur);
    if (maxsplit >= 0 && static_cast<int64_t>(words.size()) > maxsplit + 1) {
      return Err("split() with maxsplit and no separator is not supported");
    }
    return StringList(words);
  }
  if (!sep.is_string()) return Err("split(): separator must be a string");
  const std::string& d = sep.string();
  if (d.empty()) return Err("ValueError: empty separator");
  if (!from_right) {
    size_t start = 0;
    while (maxsplit != 0) {
      const size_t at = s.find(d, start);
      if (at == std::string::npos) break;
      parts.push_back(s.substr(start, at - start));
      start = at + d.size();
      if (maxsplit > 0) --maxsplit;
    }
    parts.push_back(s.substr(start));
  } else {
    size_t end = s.size();
    while (maxsplit != 0) {
      if (end < d.size()) break;
      const size_t at = s.rfind(d, end - d.size());
      if (at == std::string::npos) break;
      parts.insert(parts.begin(), s.substr(at + d.size(), end - at - d.size()));
      end = at;
      if (maxsplit > 0) --maxsplit;
    }
    parts.insert(parts.begin(), s.substr(0, end));
  }
  return StringList(parts);
}

absl::StatusOr<bool> AffixMatch(const std::string& s, const Value& affix, bool prefix) {
  const auto one = [&](const Value& a) -> absl::StatusOr<bool> {
    if (!a.is_string()) return Err("startswith/endswith: argument must be a string or tuple");
    const std::string& t = a.string();
    if (t.size() > s.size()) return false;
    return prefix ? s.compare(0, t.size(), t) == 0
                  : s.compare(s.size() - t.size(), t.size(), t) == 0;
  };
  if (affix.is_list()) {
    for (const Value& a : affix.list()) {
      auto m = one(a);
      if (!m.ok() || *m) return m;
    }
    return false;
  }
  return one(affix);
}

std::string TitleCase(std::string_view s) {
  std::string out(s);
  bool prev_cased = false;
  for (char& c : out) {
    const bool alpha = std::isalpha(static_cast<unsigned char>(c)) != 0;
    if (alpha) {
      c = prev_cased ? absl::ascii_tolower(c) : absl::ascii_toupper(c);
    }
    prev_cased = alpha;
  }
  return out;
}

absl::StatusOr<Value> StringMethod(const std::string& s, std::string_view name, CallArgs& args) {
  if (name == "strip") return Value::String(StripChars(s, Arg(args, 0, "chars"), true, true));
  if (name == "lstrip") return Value::String(StripChars(s, Arg(args, 0, "chars"), true, false));
  if (name == "rstrip") return Value::String(StripChars(s, Arg(args, 0, "chars"), false, true));
  if (name == "split") return Split(s, args, false);
  if (name == "rsplit") return Split(s, args, true);
  if (name == "upper") return Value::String(absl::AsciiStrToUpper(s));
  if (name == "lower") return Value::String(absl::AsciiStrToLower(s));
  if (name == "title") return Value::String(TitleCase(s));
  if (name == "capitalize") {
    std::string out = absl::AsciiStrToLower(s);
    if (!out.empty()) out[0] = absl::ascii_toupper(out[0]);
    return Value::String(out);
  }
  if (name == "startswith" || name == "endswith") {
    auto m = AffixMatch(s, Arg(args, 0, "prefix"), name == "startswith");
    if (!m.ok()) return m.status();
    return Value::Bool(*m);
  }
  if (name == "replace") {
    const Value from = Arg(args, 0, "old"), to = Arg(args, 1, "new");
    const Value count = Arg(args, 2, "count", Value::Int(-1));
    if (!from.is_string() || !to.is_string()) return Err("replace(): arguments must be strings");
    int64_t left = count.is_int() ? count.int_value() : -1;
    std::string out;
    if (from.string().empty()) return Err("replace() with an empty pattern is not supported");
    size_t start = 0;
    while (left != 0) {
      const size_t at = s.find(from.string(), start);
      if (at == std::string::npos) break;
      absl::StrAppend(&out, s.substr(start, at - start), to.string());
      start = at + from.string().size();
      if (left > 0) --left;
    }
    out += s.substr(start);
    return Value::String(out);
  }
  if (name == "find" || name == "index" || name == "rfind" || name == "count") {
    const Value sub = Arg(args, 0, "sub");
    if (!sub.is_string())
      return Err(absl::StrCat(std::string(name), "(): argument must be a string"));
    if (name == "count") {
      int64_t n = 0;
      if (sub.string().empty()) return Value::Int(static_cast<int64_t>(CodePointLength(s)) + 1);
      for (size_t at = s.find(sub.string()); at != std::string::npos;
           at = s.find(sub.string(), at + sub.string().size())) {
        ++n;
      }
      return Value::Int(n);
    }
    const size_t at = name == "rfind" ? s.rfind(sub.string()) : s.find(sub.string());
    if (at == std::string::npos) {
      if (name == "index") return Err("ValueError: substring not found");
      return Value::Int(-1);
    }
    return Value::Int(static_cast<int64_t>(CodePointLength(s.substr(0, at))));
  }
  if (name == "join") {
    auto items = Iterate(Arg(args, 0, "iterable"));
    if (!items.ok()) return items.status();
    std::string out;
    for (size_t i = 0; i < items->size(); ++i) {
      if (!(*items)[i].is_string()) return Err("join(): items must be strings");
      if (i > 0) out += s;
      out += (*items)[i].string();
    }
    return Value::String(out);
  }
  if (name == "splitlines") {
    std::vector<std::string> lines;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\n' || s[i] == '\r') {
        lines.push_back(s.substr(start, i - start));
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
        start = i + 1;
      }
    }
    if (start < s.size()) lines.push_back(s.substr(start));
    return StringList(lines);
  }
  if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isupper" ||
      name == "islower") {
    if (s.empty()) return Value::Bool(false);
    bool ok = true, cased = false;
    for (const std::string& cp : SplitCodePoints(s)) {
      const unsigned char c = static_cast<unsigned char>(cp[0]);
      if (name == "isspace") {
        ok = ok && IsPythonSpace(cp);
      } else if (name == "isdigit") {
        ok = ok && cp.size() == 1 && std::isdigit(c);
      } else if (name == "isalpha") {
        ok = ok && cp.size() == 1 && std::isalpha(c);
      } else if (cp.size() == 1 && std::isalpha(c)) {
        cased = true;
        ok = ok && (name == "isupper" ? std::isupper(c) : std::islower(c));
      }
    }
    return Value::Bool(ok &&
                       (name == "isdigit" || name == "isalpha" || name == "isspace" || cased));
  }
  return Err(absl::StrCat("'str' object has no attribute '", std::string(name), "'"));
}

absl::StatusOr<Value> DictMethod(const Value& d, std::string_view name, CallArgs& args) {
  if (name == "items" || name == "keys" || name == "values") {
    ValueList out;
    for (const auto& [k, v] : d.dict().items()) {
      if (name == "items") {
        out.push_back(Value::List({Value::String(k), v}));
      } else {
        out.push_back(name == "keys" ? Value::String(k) : v);
      }
    }
    return Value::List(std::move(out));
  }
  if (name == "get") {
    const Value key = Arg(args, 0, "key");
    if (key.is_string()) {
      if (const Value* v = d.dict().Find(key.string())) return *v;
    }
    return Arg(args, 1, "default", Value::None());
  }
  return Err(absl::StrCat("'dict' object has no attribute '", std::string(name), "'"));
}

bool IsStringMethod(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "strip",      "lstrip",     "rstrip",   "split",   "rsplit",  "upper",   "lower",  "title",
      "capitalize", "startswith", "endswith", "replace", "find",    "index",   "rfind",  "count",
      "join",       "splitlines", "isdigit",  "isalpha", "isspace", "isupper", "islower"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

int64_t ClampIndex(int64_t i, int64_t n, int64_t step) {
  if (i < 0) i += n;
  if (step > 0) return std::clamp<int64_t>(i, 0, n);
  return std::clamp<int64_t>(i, -1, n - 1);
}

}  // namespace

std::vector<std::string> SplitCodePoints(std::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = std::min(Utf8Len(static_cast<unsigned char>(s[i])), s.size() - i);
    out.emplace_back(s.substr(i, n));
    i += n;
  }
  return out;
}

size_t CodePointLength(std::string_view s) {
  size_t n = 0;
  for (const char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

Value Arg(const CallArgs& args, size_t position, std::string_view keyword, Value fallback) {
  if (position < args.positional.size()) return args.positional[position];
  for (const auto& [k, v] : args.keyword) {
    if (k == keyword) return v;
  }
  return fallback;
}

absl::StatusOr<Value> GetAttr(const Value& obj, std::string_view name) {
  if (obj.is_undefined()) {
    return Err(absl::StrCat(obj.name().empty() ? "value" : "'" + obj.name() + "'",
                            " is undefined (reading attribute '", std::string(name), "')"));
  }
  if (obj.is_dict()) {
    if (!obj.is_namespace() &&
        (name == "items" || name == "keys" || name == "values" || name == "get")) {
      const std::string method(name);
      return Value::Function(
          method, [obj, method](CallArgs& args) { return DictMethod(obj, method, args); });
    }
    if (const Value* v = obj.dict().Find(name)) return *v;
    return Value::Undefined(std::string(name));
  }
  if (obj.is_string() && IsStringMethod(name)) {
    const std::string s = obj.string(), method(name);
    return Value::Function(method,
                           [s, method](CallArgs& args) { return StringMethod(s, method, args); });
  }
  return Value::Undefined(std::string(name));
}

absl::StatusOr<Value> GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) {
    return Err(absl::StrCat(obj.name().empty() ? "value" : "'" + obj.name() + "'",
                            " is undefined (reading an item)"));
  }
  if (obj.is_dict()) {
    if (key.is_string()) {
      if (const Value* v = obj.dict().Find(key.string())) return *v;
      return GetAttr(obj, key.string());
    }
    return Value::Undefined("item");
  }
  if ((obj.is_list() || obj.is_string()) && key.is_int()) {
    int64_t i = key.int_value();
    if (obj.is_generator()) return Value::Undefined("index");
    if (obj.is_list()) {
      const auto n = static_cast<int64_t>(obj.list().size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::Undefined("index");
      return obj.list()[static_cast<size_t>(i)];
    }
    const std::vector<std::string> cps = SplitCodePoints(obj.string());
    const auto n = static_cast<int64_t>(cps.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::Undefined("index");
    return Value::String(cps[static_cast<size_t>(i)]);
  }
  if (key.is_string()) return GetAttr(obj, key.string());
  return Value::Undefined("item");
}

absl::StatusOr<Value> GetSlice(const Value& obj, const Value& start, const Value& stop,
                               const Value& step) {
  const auto as_int = [](const Value& v, int64_t fallback) -> absl::StatusOr<int64_t> {
    if (v.is_undefined() || v.is_none()) return fallback;
    if (!v.is_int()) return Err("slice indices must be integers or None");
    return v.int_value();
  };
  auto st = as_int(step, 1);
  if (!st.ok()) return st.status();
  if (*st == 0) return Err("slice step cannot be zero");
  ValueList items;
  std::vector<std::string> cps;
  int64_t n = 0;
  if (obj.is_generator()) {
    return Err("'generator' object is not subscriptable");
  } else if (obj.is_list()) {
    n = static_cast<int64_t>(obj.list().size());
  } else if (obj.is_string()) {
    cps = SplitCodePoints(obj.string());
    n = static_cast<int64_t>(cps.size());
  } else {
    return Err(absl::StrCat("cannot slice a value of type ", obj.TypeName()));
  }
  auto lo = as_int(start, *st > 0 ? 0 : n - 1);
  auto hi = as_int(stop, *st > 0 ? n : -n - 1);
  if (!lo.ok()) return lo.status();
  if (!hi.ok()) return hi.status();
  const int64_t a = ClampIndex(*lo, n, *st);
  const int64_t b =
      (stop.is_undefined() || stop.is_none()) ? (*st > 0 ? n : -1) : ClampIndex(*hi, n, *st);
  std::string text;
  for (int64_t i = a; *st > 0 ? i < b : i > b; i += *st) {
    if (obj.is_list()) {
      items.push_back(obj.list()[static_cast<size_t>(i)]);
    } else {
      text += cps[static_cast<size_t>(i)];
    }
  }
  if (obj.is_list()) return Value::List(std::move(items));
  return Value::String(text);
}

absl::StatusOr<ValueList> Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return ValueList{};
    case Value::Kind::kList:
      return v.list();
    case Value::Kind::kDict: {
      ValueList keys;
      for (const auto& [k, unused] : v.dict().items()) keys.push_back(Value::String(k));
      return keys;
    }
    case Value::Kind::kString: {
      ValueList chars;
      for (const std::string& cp : SplitCodePoints(v.string())) chars.push_back(Value::String(cp));
      return chars;
    }
    default:
      return Err(absl::StrCat("'", v.TypeName(), "' object is not iterable"));
  }
}

}  // namespace restkv::engine::jinja
