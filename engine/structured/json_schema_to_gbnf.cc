#include "engine/structured/json_schema_to_gbnf.h"

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "engine/structured/json_value.h"
#include "engine/structured/regex_to_gbnf.h"

namespace restkv::engine::structured {
namespace {

// The primitive rules every schema grammar shares (and json_object uses).
constexpr char kPrimitives[] = R"(ws ::= ( " " | "\n" [ \t]{0,16} )?
json-value ::= json-object | json-array | json-string | json-number | json-bool | json-null
json-object ::= "{" ws ( json-member ( "," ws json-member )* )? "}"
json-member ::= json-string ws ":" ws json-value ws
json-array ::= "[" ws ( json-value ws ( "," ws json-value ws )* )? "]"
json-string ::= "\"" json-char* "\""
json-char ::= [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
json-nat ::= "0" | [1-9] [0-9]{0,15}
json-frac ::= ( "." [0-9]{1,16} )?
json-integer ::= "-"? json-nat
json-number ::= "-"? json-nat json-frac ( [eE] [-+]? [0-9]{1,3} )?
json-bool ::= "true" | "false"
json-null ::= "null"
)";

// Fixed regexes for the string formats we support.
const std::map<std::string, std::string>& Formats() {
  static const auto* formats = new std::map<std::string, std::string>{
      {"date", R"([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]))"},
      {"time",
       R"(([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))"},
      {"date-time",
       R"([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))"},
      {"uuid", R"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"},
      {"email",
       R"([A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63}){0,3}\.[A-Za-z]{2,12})"},
  };
  return *formats;
}

const std::set<std::string>& Annotations() {
  static const auto* a = new std::set<std::string>{
      "title",    "description", "default",    "examples",      "$schema", "$id",        "$comment",
      "readOnly", "writeOnly",   "deprecated", "discriminator", "$defs",   "definitions"};
  return *a;
}

const std::set<std::string>& Supported() {
  static const auto* s = new std::set<std::string>{"type",
                                                   "const",
                                                   "enum",
                                                   "anyOf",
                                                   "oneOf",
                                                   "allOf",
                                                   "$ref",
                                                   "properties",
                                                   "required",
                                                   "additionalProperties",
                                                   "items",
                                                   "prefixItems",
                                                   "minItems",
                                                   "maxItems",
                                                   "minLength",
                                                   "maxLength",
                                                   "pattern",
                                                   "format",
                                                   "minimum",
                                                   "maximum",
                                                   "exclusiveMinimum",
                                                   "exclusiveMaximum",
                                                   "uniqueItems"};
  return *s;
}

// "(a | b | ...)" (built with StrCat: GCC 12's -Wrestrict misfires on
// "literal" + std::string chains).
std::string Group(const std::vector<std::string>& alts) {
  return absl::StrCat("(", absl::StrJoin(alts, " | "), ")");
}

constexpr int64_t kMaxBound = 1000000000000000;  // 1e15: 16 digits at most

std::string Digits(int64_t v) { return absl::StrCat(v); }

// Decimal strings x <= y of equal length (leading zeros allowed) as GBNF.
std::string SameLength(const std::string& x, const std::string& y) {
  if (x.empty()) return "";
  const size_t rest = x.size() - 1;
  const std::string tail = rest == 0 ? "" : absl::StrCat(" [0-9]{", rest, "}");
  if (x[0] == y[0]) {
    const std::string more = SameLength(x.substr(1), y.substr(1));
    return absl::StrCat("\"", std::string(1, x[0]), "\"", more.empty() ? "" : " " + more);
  }
  if (x.find_first_not_of('0', 1) == std::string::npos &&
      y.find_first_not_of('9', 1) == std::string::npos) {
    return absl::StrCat("[", std::string(1, x[0]), "-", std::string(1, y[0]), "]", tail);
  }
  std::vector<std::string> alts;
  alts.push_back(absl::StrCat("\"", std::string(1, x[0]), "\" ",
                              SameLength(x.substr(1), std::string(rest, '9'))));
  if (x[0] + 1 <= y[0] - 1) {
    alts.push_back(absl::StrCat("[", std::string(1, static_cast<char>(x[0] + 1)), "-",
                                std::string(1, static_cast<char>(y[0] - 1)), "]", tail));
  }
  alts.push_back(absl::StrCat("\"", std::string(1, y[0]), "\" ",
                              SameLength(std::string(rest, '0'), y.substr(1))));
  return Group(alts);
}

int64_t Pow10(size_t n) {
  int64_t p = 1;
  for (size_t i = 0; i < n; ++i) p *= 10;
  return p;
}

// Non-negative integers in [a, b] without leading zeros; b < 0: unbounded.
std::string NonNegative(int64_t a, int64_t b) {
  const size_t la = Digits(a).size();
  std::vector<std::string> alts;
  if (b < 0) {
    alts.push_back(SameLength(Digits(a), Digits(la == 1 ? 9 : Pow10(la) - 1)));
    if (la < 16) alts.push_back(absl::StrCat("[1-9] [0-9]{", la, ",15}"));
  } else {
    const size_t lb = Digits(b).size();
    for (size_t len = la; len <= lb; ++len) {
      const int64_t lo = len == la ? a : Pow10(len - 1);
      const int64_t hi = len == lb ? b : Pow10(len) - 1;
      alts.push_back(SameLength(Digits(lo), Digits(hi)));
    }
  }
  return alts.size() == 1 ? alts[0] : Group(alts);
}

class SchemaCompiler {
 public:
  explicit SchemaCompiler(const JsonValue& root) : root_(root) {}

  absl::StatusOr<std::string> Run() {
    RESTKV_ASSIGN_OR_RETURN(std::string expr, Ref("#", "#"));
    std::string out = absl::StrCat("root ::= ", expr, "\n", kPrimitives);
    for (const auto& [name, body] : rules_) absl::StrAppend(&out, name, " ::= ", body, "\n");
    return out;
  }

 private:
  static absl::Status Unsupported(const std::string& what, const std::string& path) {
    return absl::InvalidArgumentError(
        absl::StrFormat("unsupported JSON Schema %s at %s", what, path));
  }
  static absl::Status Invalid(const std::string& what, const std::string& path) {
    return absl::InvalidArgumentError(absl::StrFormat("invalid JSON Schema at %s: %s", path, what));
  }

  std::string NewRule(const std::string& hint, const std::string& body) {
    std::string name = absl::StrCat("s", rules_.size(), "-", hint);
    rules_.emplace_back(name, body);
    return name;
  }

  // The rule for the schema at JSON pointer `ref` (compiled once; recursion
  // refers to the rule by name).
  absl::StatusOr<std::string> Ref(const std::string& ref, const std::string& path) {
    if (auto it = refs_.find(ref); it != refs_.end()) return it->second;
    if (ref.empty() || ref[0] != '#') {
      return Unsupported(absl::StrCat("$ref '", ref, "' (only local references)"), path);
    }
    const JsonValue* target = &root_;
    if (ref.size() > 1) {
      if (ref[1] != '/') return Unsupported(absl::StrCat("$ref '", ref, "'"), path);
      for (absl::string_view part : absl::StrSplit(ref.substr(2), '/')) {
        std::string token;
        for (size_t i = 0; i < part.size(); ++i) {
          if (part[i] == '~' && i + 1 < part.size()) {
            token.push_back(part[i + 1] == '1' ? '/' : '~');
            ++i;
          } else {
            token.push_back(part[i]);
          }
        }
        const JsonValue* next = nullptr;
        if (target->is_object()) {
          next = target->Find(token);
        } else if (target->is_array() && !token.empty() &&
                   token.find_first_not_of("0123456789") == std::string::npos && token.size() < 9 &&
                   std::stoul(token) < target->array().size()) {
          next = &target->array()[std::stoul(token)];
        }
        if (next == nullptr)
          return Invalid(absl::StrCat("$ref '", ref, "' does not resolve"), path);
        target = next;
      }
    }
    const size_t slot = rules_.size();
    std::string name = absl::StrCat("s", slot, "-ref");
    rules_.emplace_back(name, "");
    refs_[ref] = name;
    RESTKV_ASSIGN_OR_RETURN(std::string body, Compile(*target, ref));
    rules_[slot].second = body;
    return name;
  }

  absl::StatusOr<std::string> Compile(const JsonValue& s, const std::string& path) {
    if (s.is_bool()) {
      if (s.bool_value()) return std::string("json-value");
      return Invalid("the schema 'false' matches nothing", path);
    }
    if (!s.is_object()) return Invalid("a schema must be an object or a boolean", path);
    std::vector<std::string> unsupported;
    for (const auto& [key, value] : s.members()) {
      if (!Supported().contains(key) && !Annotations().contains(key)) unsupported.push_back(key);
    }
    if (const JsonValue* u = s.Find("uniqueItems");
        u != nullptr && !(u->is_bool() && !u->bool_value())) {
      unsupported.push_back("uniqueItems");
    }
    if (!unsupported.empty()) {
      return Unsupported(absl::StrCat(unsupported.size() == 1 ? "keyword " : "keywords ", "'",
                                      absl::StrJoin(unsupported, "', '"), "'"),
                         path);
    }
    if (const JsonValue* r = s.Find("$ref")) {
      if (!r->is_string()) return Invalid("$ref must be a string", path);
      return Ref(r->string(), path);
    }
    if (const JsonValue* c = s.Find("const")) return GbnfLiteral(c->Serialize());
    if (const JsonValue* e = s.Find("enum")) {
      if (!e->is_array() || e->array().empty())
        return Invalid("enum must be a non-empty array", path);
      std::vector<std::string> alts;
      for (const JsonValue& v : e->array()) alts.push_back(GbnfLiteral(v.Serialize()));
      return Group(alts);
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (const JsonValue* a = s.Find(key)) {
        if (!a->is_array() || a->array().empty()) {
          return Invalid(absl::StrCat(key, " must be a non-empty array"), path);
        }
        std::vector<std::string> alts;
        for (size_t i = 0; i < a->array().size(); ++i) {
          RESTKV_ASSIGN_OR_RETURN(std::string alt,
                                  Compile(a->array()[i], absl::StrCat(path, "/", key, "/", i)));
          alts.push_back(alt);
        }
        return Group(alts);
      }
    }
    if (const JsonValue* a = s.Find("allOf")) {
      if (!a->is_array() || a->array().size() != 1) {
        return Unsupported("allOf with more than one schema", path);
      }
      return Compile(a->array()[0], path + "/allOf/0");
    }
    std::vector<std::string> types;
    if (const JsonValue* t = s.Find("type")) {
      if (t->is_string()) {
        types.push_back(t->string());
      } else if (t->is_array() && !t->array().empty()) {
        for (const JsonValue& v : t->array()) {
          if (!v.is_string()) return Invalid("type must be a string or an array of strings", path);
          types.push_back(v.string());
        }
      } else {
        return Invalid("type must be a string or an array of strings", path);
      }
    } else if (s.Find("properties") || s.Find("additionalProperties") || s.Find("required")) {
      types.push_back("object");
    } else if (s.Find("items") || s.Find("prefixItems")) {
      types.push_back("array");
    } else if (s.Find("pattern") || s.Find("format") || s.Find("minLength") ||
               s.Find("maxLength")) {
      types.push_back("string");
    } else {
      return std::string("json-value");
    }
    std::vector<std::string> alts;
    for (const std::string& t : types) {
      RESTKV_ASSIGN_OR_RETURN(std::string alt, Typed(s, t, path));
      alts.push_back(alt);
    }
    return alts.size() == 1 ? alts[0] : Group(alts);
  }

  absl::StatusOr<std::string> Typed(const JsonValue& s, const std::string& type,
                                    const std::string& path) {
    if (type == "string") return String(s, path);
    if (type == "integer") return Integer(s, path);
    if (type == "number") return Number(s, path);
    if (type == "boolean") return std::string("json-bool");
    if (type == "null") return std::string("json-null");
    if (type == "object") return Object(s, path);
    if (type == "array") return Array(s, path);
    return Invalid(absl::StrCat("unknown type '", type, "'"), path);
  }

  // A non-negative integer keyword, or nullopt when absent.
  static absl::StatusOr<std::optional<int64_t>> Count(const JsonValue& s, const char* key,
                                                      const std::string& path) {
    const JsonValue* v = s.Find(key);
    if (v == nullptr) return std::optional<int64_t>();
    if (!v->is_number() || v->number() < 0 || v->number() != std::floor(v->number())) {
      return Invalid(absl::StrCat(key, " must be a non-negative integer"), path);
    }
    if (v->number() > 10000) return Unsupported(absl::StrCat(key, " above 10000"), path);
    return std::optional<int64_t>(static_cast<int64_t>(v->number()));
  }

  absl::StatusOr<std::string> String(const JsonValue& s, const std::string& path) {
    RESTKV_ASSIGN_OR_RETURN(std::optional<int64_t> min, Count(s, "minLength", path));
    RESTKV_ASSIGN_OR_RETURN(std::optional<int64_t> max, Count(s, "maxLength", path));
    const JsonValue* pattern = s.Find("pattern");
    const JsonValue* format = s.Find("format");
    if ((pattern || format) && (min || max)) {
      return Unsupported("minLength/maxLength together with pattern or format", path);
    }
    if (pattern && format) return Unsupported("pattern together with format", path);
    std::string regex;
    if (pattern) {
      if (!pattern->is_string()) return Invalid("pattern must be a string", path);
      regex = pattern->string();
    } else if (format) {
      if (!format->is_string()) return Invalid("format must be a string", path);
      auto it = Formats().find(format->string());
      if (it == Formats().end())
        return Unsupported(absl::StrCat("format '", format->string(), "'"), path);
      regex = it->second;
    }
    if (pattern || format) {
      absl::StatusOr<std::string> body = RegexToGbnf(regex, /*json_string=*/true);
      if (!body.ok()) return Invalid(absl::StrCat("pattern: ", body.status().message()), path);
      return NewRule("string", "\"\\\"\" " + *body + " \"\\\"\"");
    }
    if (!min && !max) return std::string("json-string");
    if (min && max && *min > *max) return Invalid("minLength > maxLength", path);
    return NewRule("string", absl::StrFormat("\"\\\"\" json-char{%d,%s} \"\\\"\"", min.value_or(0),
                                             max ? absl::StrCat(*max) : ""));
  }

  // Integer bounds of s, inclusive; nullopt when unbounded on that side.
  static absl::Status Bounds(const JsonValue& s, const std::string& path, bool integer_only,
                             std::optional<int64_t>* lo, std::optional<int64_t>* hi) {
    for (const char* key : {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"}) {
      const JsonValue* v = s.Find(key);
      if (v == nullptr) continue;
      if (!v->is_number()) return Invalid(absl::StrCat(key, " must be a number"), path);
      const double x = v->number();
      if (std::fabs(x) > static_cast<double>(kMaxBound)) {
        return Unsupported(absl::StrCat(key, " beyond +-1e15"), path);
      }
      const std::string k = key;
      if (integer_only && (x != std::floor(x) || k.starts_with("exclusive") || x < 0)) {
        return Unsupported(absl::StrCat(key, " on a number (only integer minimum/maximum >= 0)"),
                           path);
      }
      int64_t b = 0;
      if (k == "minimum") b = static_cast<int64_t>(std::ceil(x));
      if (k == "exclusiveMinimum") b = static_cast<int64_t>(std::floor(x)) + 1;
      if (k == "maximum") b = static_cast<int64_t>(std::floor(x));
      if (k == "exclusiveMaximum") b = static_cast<int64_t>(std::ceil(x)) - 1;
      if (k.find("inimum") != std::string::npos) {
        *lo = lo->has_value() ? std::max(**lo, b) : b;
      } else {
        *hi = hi->has_value() ? std::min(**hi, b) : b;
      }
    }
    if (*lo && *hi && **lo > **hi) return Invalid("the numeric range is empty", path);
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Integer(const JsonValue& s, const std::string& path) {
    std::optional<int64_t> lo, hi;
    RESTKV_RETURN_IF_ERROR(Bounds(s, path, false, &lo, &hi));
    if (!lo && !hi) return std::string("json-integer");
    std::vector<std::string> alts;
    if (!hi || *hi >= 0) alts.push_back(NonNegative(lo && *lo > 0 ? *lo : 0, hi ? *hi : -1));
    if (!lo || *lo < 0) {
      const int64_t mag_lo = hi && *hi < 0 ? -*hi : 1;
      alts.push_back("\"-\" " + NonNegative(mag_lo, lo ? -*lo : -1));
    }
    return NewRule("integer", alts.size() == 1 ? alts[0] : Group(alts));
  }

  absl::StatusOr<std::string> Number(const JsonValue& s, const std::string& path) {
    std::optional<int64_t> lo, hi;
    RESTKV_RETURN_IF_ERROR(Bounds(s, path, true, &lo, &hi));
    if (!lo && !hi) return std::string("json-number");
    const int64_t a = lo.value_or(0);
    if (!hi) return NewRule("number", NonNegative(a, -1) + " json-frac");
    // [a, b]: an integer part below b with any fraction, or b itself.
    std::string top = absl::StrCat("\"", Digits(*hi), "\" ( \".\" \"0\"{1,16} )?");
    if (a == *hi) return NewRule("number", top);
    return NewRule("number", absl::StrCat("(", NonNegative(a, *hi - 1), " json-frac | ", top, ")"));
  }

  absl::StatusOr<std::string> Object(const JsonValue& s, const std::string& path) {
    struct Prop {
      std::string kv;  // the member's grammar: "name" ws ":" ws value
      bool required;
    };
    std::vector<Prop> props;
    std::set<std::string> required;
    if (const JsonValue* r = s.Find("required")) {
      if (!r->is_array()) return Invalid("required must be an array of strings", path);
      for (const JsonValue& v : r->array()) {
        if (!v.is_string()) return Invalid("required must be an array of strings", path);
        required.insert(v.string());
      }
    }
    std::set<std::string> listed;
    if (const JsonValue* p = s.Find("properties")) {
      if (!p->is_object()) return Invalid("properties must be an object", path);
      for (const auto& [name, sub] : p->members()) {
        RESTKV_ASSIGN_OR_RETURN(std::string value,
                                Compile(sub, absl::StrCat(path, "/properties/", name)));
        props.push_back({absl::StrCat(GbnfLiteral(JsonQuote(name)), " ws \":\" ws ", value),
                         required.contains(name)});
        listed.insert(name);
      }
    }
    for (const std::string& r : required) {
      if (!listed.contains(r)) {
        return Unsupported(absl::StrCat("required property '", r, "' not listed in properties"),
                           path);
      }
    }
    std::string extra;  // the grammar of one additional member, if allowed
    if (const JsonValue* a = s.Find("additionalProperties")) {
      if (!(a->is_bool() && !a->bool_value())) {
        RESTKV_ASSIGN_OR_RETURN(std::string value, Compile(*a, path + "/additionalProperties"));
        extra = "json-string ws \":\" ws " + value;
      }
    }
    const size_t n = props.size();
    // after[i]: members i.. each after a comma; first[i]: the first member
    // present is i or later (then the rest as after[]).
    std::vector<std::string> after(n + 1), first(n + 1);
    after[n] = extra.empty() ? "\"\"" : NewRule("more", "( \",\" ws " + extra + " ws )*");
    first[n] = extra.empty() ? "\"\"" : NewRule("extra", "( " + extra + " ws " + after[n] + " )?");
    for (size_t i = n; i-- > 0;) {
      const std::string member = "\",\" ws " + props[i].kv + " ws";
      after[i] = NewRule("after", props[i].required ? member + " " + after[i + 1]
                                                    : "( " + member + " )? " + after[i + 1]);
      const std::string here = props[i].kv + " ws " + after[i + 1];
      first[i] = NewRule("first", props[i].required ? here : here + " | " + first[i + 1]);
    }
    return NewRule("object", "\"{\" ws " + first[0] + " \"}\"");
  }

  absl::StatusOr<std::string> Array(const JsonValue& s, const std::string& path) {
    RESTKV_ASSIGN_OR_RETURN(std::optional<int64_t> min, Count(s, "minItems", path));
    RESTKV_ASSIGN_OR_RETURN(std::optional<int64_t> max, Count(s, "maxItems", path));
    if (min && max && *min > *max) return Invalid("minItems > maxItems", path);
    std::string item = "json-value";
    bool items_allowed = true;
    if (const JsonValue* it = s.Find("items")) {
      if (it->is_bool() && !it->bool_value()) {
        items_allowed = false;
      } else {
        RESTKV_ASSIGN_OR_RETURN(item, Compile(*it, path + "/items"));
      }
    }
    if (const JsonValue* pre = s.Find("prefixItems")) {
      if (!pre->is_array() || pre->array().empty()) {
        return Invalid("prefixItems must be a non-empty array", path);
      }
      if (min || max) return Unsupported("minItems/maxItems together with prefixItems", path);
      std::vector<std::string> parts;
      for (size_t i = 0; i < pre->array().size(); ++i) {
        RESTKV_ASSIGN_OR_RETURN(std::string p,
                                Compile(pre->array()[i], absl::StrCat(path, "/prefixItems/", i)));
        parts.push_back(p + " ws");
      }
      std::string body = "\"[\" ws " + absl::StrJoin(parts, " \",\" ws ");
      if (items_allowed) body += " ( \",\" ws " + item + " ws )*";
      return NewRule("tuple", body + " \"]\"");
    }
    if (!items_allowed || (max && *max == 0)) return NewRule("array", "\"[\" ws \"]\"");
    const int64_t lo = min.value_or(0);
    const std::string rest = absl::StrFormat("( \",\" ws %s ws ){%d,%s}", item, lo > 0 ? lo - 1 : 0,
                                             max ? absl::StrCat(*max - 1) : "");
    std::string body = item + " ws " + rest;
    if (lo == 0) body = "( " + body + " )?";
    return NewRule("array", "\"[\" ws " + body + " \"]\"");
  }

  const JsonValue& root_;
  std::vector<std::pair<std::string, std::string>> rules_;  // in definition order
  absl::flat_hash_map<std::string, std::string> refs_;      // JSON pointer -> rule
};

}  // namespace

absl::StatusOr<std::string> JsonSchemaToGbnf(std::string_view schema_json) {
  absl::StatusOr<JsonValue> schema = JsonValue::Parse(schema_json);
  if (!schema.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("JSON Schema: ", schema.status().message()));
  }
  return SchemaCompiler(*schema).Run();
}

std::string JsonObjectGbnf() { return std::string("root ::= json-object\n") + kPrimitives; }

}  // namespace restkv::engine::structured
