#include "engine/jinja/evaluator.h"

#include <cmath>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/jinja/builtins.h"

namespace restkv::engine::jinja {
namespace {

enum class Flow { kNormal, kBreak, kContinue };

class Evaluator {
 public:
  Evaluator(Value globals, size_t max_output) : max_output_(max_output) {
    scopes_.push_back(std::move(globals));
    scopes_.push_back(Value::Dict());  // the template's own top-level assignments
  }

  absl::StatusOr<std::string> Run(const StmtList& body) {
    std::string out;
    auto flow = ExecList(body, &out);
    if (!flow.ok()) return flow.status();
    return out;
  }

 private:
  static absl::Status AtLine(int line, const absl::Status& s) {
    if (s.ok() || absl::StartsWith(s.message(), "line ")) return s;
    return absl::Status(s.code(), absl::StrCat("line ", line, ": ", s.message()));
  }

  Value Lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      if (const Value* v = it->dict().Find(name)) return *v;
    }
    return Value::Undefined(name);
  }

  void Assign(const std::string& name, Value v) {
    scopes_.back().mutable_dict().Set(name, std::move(v));
  }

  absl::StatusOr<Flow> ExecList(const StmtList& body, std::string* out) {
    for (const auto& s : body) {
      auto flow = Exec(*s, out);
      if (!flow.ok()) return AtLine(s->line, flow.status());
      if (*flow != Flow::kNormal) return flow;
      if (out->size() > max_output_) {
        return absl::ResourceExhaustedError(
            absl::StrCat("line ", s->line, ": template output exceeds ", max_output_, " bytes"));
      }
    }
    return Flow::kNormal;
  }

  absl::Status AssignTargets(const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      Assign(targets[0], v);
      return absl::OkStatus();
    }
    auto items = Iterate(v);
    if (!items.ok()) return items.status();
    if (items->size() != targets.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot unpack ", items->size(), " values into ", targets.size(), " names"));
    }
    for (size_t i = 0; i < targets.size(); ++i) Assign(targets[i], (*items)[i]);
    return absl::OkStatus();
  }

  absl::StatusOr<Flow> Exec(const Stmt& s, std::string* out) {
    switch (s.kind) {
      case Stmt::Kind::kText:
        *out += s.text;
        return Flow::kNormal;
      case Stmt::Kind::kOutput: {
        auto v = Eval(*s.expr);
        if (!v.ok()) return v.status();
        *out += v->Str();
        return Flow::kNormal;
      }
      case Stmt::Kind::kIf: {
        auto c = Eval(*s.expr);
        if (!c.ok()) return c.status();
        return ExecList(c->Truthy() ? s.body : s.else_body, out);
      }
      case Stmt::Kind::kFor:
        return ExecFor(s, out);
      case Stmt::Kind::kSet: {
        Value v;
        if (s.expr == nullptr) {
          std::string text;
          auto flow = ExecList(s.body, &text);
          if (!flow.ok()) return flow.status();
          v = Value::String(std::move(text));
        } else {
          auto e = Eval(*s.expr);
          if (!e.ok()) return e.status();
          v = *e;
        }
        if (!s.attr.empty()) {
          Value ns = Lookup(s.targets[0]);
          if (!ns.is_namespace()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "cannot assign attribute on non-namespace object '", s.targets[0], "'"));
          }
          ns.mutable_dict().Set(s.attr, v);
          return Flow::kNormal;
        }
        absl::Status st = AssignTargets(s.targets, v);
        if (!st.ok()) return st;
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro:
        Assign(s.text, MakeMacro(s, Value()));
        return Flow::kNormal;
      case Stmt::Kind::kCallBlock: {
        Value caller = MakeMacro(s, Value());
        auto callee = Eval(*s.expr->items[0]);
        if (!callee.ok()) return callee.status();
        auto args = EvalArgs(*s.expr);
        if (!args.ok()) return args.status();
        args->keyword.emplace_back("caller", caller);
        if (!callee->is_callable())
          return absl::InvalidArgumentError("call block target is not callable");
        auto r = callee->callable()(*args);
        if (!r.ok()) return r.status();
        *out += r->Str();
        return Flow::kNormal;
      }
      case Stmt::Kind::kFilterBlock: {
        std::string text;
        auto flow = ExecList(s.body, &text);
        if (!flow.ok()) return flow.status();
        auto v = EvalFilterChain(*s.expr, Value::String(std::move(text)));
        if (!v.ok()) return v.status();
        *out += v->Str();
        return Flow::kNormal;
      }
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
    }
    return Flow::kNormal;
  }

  absl::StatusOr<Flow> ExecFor(const Stmt& s, std::string* out) {
    auto seq = Eval(*s.expr);
    if (!seq.ok()) return seq.status();
    auto all = Iterate(*seq);
    if (!all.ok()) return all.status();
    ValueList items;
    if (s.filter != nullptr) {
      for (const Value& item : *all) {
        scopes_.push_back(Value::Dict());
        absl::Status st = AssignTargets(s.targets, item);
        absl::StatusOr<Value> keep = st.ok() ? Eval(*s.filter) : absl::StatusOr<Value>(st);
        scopes_.pop_back();
        if (!keep.ok()) return keep.status();
        if (keep->Truthy()) items.push_back(item);
      }
    } else {
      items = std::move(*all);
    }
    if (items.empty()) return ExecList(s.else_body, out);
    const auto n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      Value loop = Value::Dict();
      ValueMap& l = loop.mutable_dict();
      l.Set("index", Value::Int(i + 1));
      l.Set("index0", Value::Int(i));
      l.Set("revindex", Value::Int(n - i));
      l.Set("revindex0", Value::Int(n - i - 1));
      l.Set("first", Value::Bool(i == 0));
      l.Set("last", Value::Bool(i == n - 1));
      l.Set("length", Value::Int(n));
      l.Set("depth", Value::Int(1));
      l.Set("depth0", Value::Int(0));
      l.Set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::Undefined("previtem"));
      l.Set("nextitem",
            i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::Undefined("nextitem"));
      l.Set("cycle", Value::Function("cycle", [i](CallArgs& args) -> absl::StatusOr<Value> {
              if (args.positional.empty())
                return absl::InvalidArgumentError("no items for cycling given");
              return args.positional[static_cast<size_t>(i) % args.positional.size()];
            }));
      scopes_.push_back(Value::Dict());
      Assign("loop", loop);
      absl::Status st = AssignTargets(s.targets, items[static_cast<size_t>(i)]);
      absl::StatusOr<Flow> flow = st.ok() ? ExecList(s.body, out) : absl::StatusOr<Flow>(st);
      scopes_.pop_back();
      if (!flow.ok()) return flow.status();
      if (*flow == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  // A macro (or a call block's caller) as a callable. The macro runs in a
  // fresh scope above the template's globals and top level; `caller` is
  // bound when invoked from a call block.
  Value MakeMacro(const Stmt& s, Value unused) {
    (void)unused;
    const Stmt* def = &s;
    return Value::Function(s.text, [this, def](CallArgs& args) -> absl::StatusOr<Value> {
      Value frame = Value::Dict();
      size_t next = 0;
      for (const auto& [name, default_expr] : def->params) {
        Value v;
        bool found = false;
        if (next < args.positional.size()) {
          v = args.positional[next++];
          found = true;
        }
        for (const auto& [k, kv] : args.keyword) {
          if (k == name) {
            v = kv;
            found = true;
          }
        }
        if (!found && default_expr != nullptr) {
          auto d = Eval(*default_expr);
          if (!d.ok()) return d.status();
          v = *d;
        } else if (!found) {
          v = Value::Undefined(name);
        }
        frame.mutable_dict().Set(name, v);
      }
      for (const auto& [k, kv] : args.keyword) {
        if (k == "caller") frame.mutable_dict().Set(k, kv);
      }
      if (next < args.positional.size()) {
        ValueList rest(args.positional.begin() + static_cast<std::ptrdiff_t>(next),
                       args.positional.end());
        frame.mutable_dict().Set("varargs", Value::List(std::move(rest)));
      }
      if (++depth_ > 64) {
        --depth_;
        return absl::InvalidArgumentError("macro recursion too deep");
      }
      std::vector<Value> saved = std::move(scopes_);
      scopes_ = {saved[0], saved[1], frame};
      std::string text;
      auto flow = ExecList(def->body, &text);
      scopes_ = std::move(saved);
      --depth_;
      if (!flow.ok()) return flow.status();
      return Value::String(std::move(text));
    });
  }

  absl::StatusOr<CallArgs> EvalArgs(const Expr& call, size_t first = 1) {
    CallArgs args;
    for (size_t i = first; i < call.items.size(); ++i) {
      auto v = Eval(*call.items[i]);
      if (!v.ok()) return v.status();
      args.positional.push_back(*v);
    }
    for (const auto& [k, e] : call.kwargs) {
      auto v = Eval(*e);
      if (!v.ok()) return v.status();
      args.keyword.emplace_back(k, *v);
    }
    return args;
  }

  // A filter chain parsed over a null operand ({% filter %}), applied to v.
  absl::StatusOr<Value> EvalFilterChain(const Expr& f, Value v) {
    if (f.items[0] != nullptr) {
      auto inner = EvalFilterChain(*f.items[0], std::move(v));
      if (!inner.ok()) return inner;
      v = *inner;
    }
    auto args = EvalArgs(f);
    if (!args.ok()) return args.status();
    return ApplyFilter(f.name, v, *args);
  }

  absl::StatusOr<Value> Eval(const Expr& e) {
    auto v = EvalInner(e);
    if (!v.ok()) return AtLine(e.line, v.status());
    return v;
  }

  absl::StatusOr<Value> EvalInner(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName:
        return Lookup(e.name);
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        ValueList items;
        for (const auto& item : e.items) {
          auto v = Eval(*item);
          if (!v.ok()) return v;
          items.push_back(*v);
        }
        return Value::List(std::move(items));
      }
      case Expr::Kind::kDict: {
        Value d = Value::Dict();
        for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
          auto k = Eval(*e.items[i]);
          if (!k.ok()) return k;
          auto v = Eval(*e.items[i + 1]);
          if (!v.ok()) return v;
          if (!k->is_string()) return absl::InvalidArgumentError("dict keys must be strings");
          d.mutable_dict().Set(k->string(), *v);
        }
        return d;
      }
      case Expr::Kind::kAttr: {
        auto obj = Eval(*e.items[0]);
        if (!obj.ok()) return obj;
        return GetAttr(*obj, e.name);
      }
      case Expr::Kind::kSubscript: {
        auto obj = Eval(*e.items[0]);
        if (!obj.ok()) return obj;
        auto key = Eval(*e.items[1]);
        if (!key.ok()) return key;
        return GetItem(*obj, *key);
      }
      case Expr::Kind::kSlice: {
        auto obj = Eval(*e.items[0]);
        if (!obj.ok()) return obj;
        Value parts[3];
        for (int i = 0; i < 3; ++i) {
          if (e.items[static_cast<size_t>(i) + 1] == nullptr) continue;
          auto p = Eval(*e.items[static_cast<size_t>(i) + 1]);
          if (!p.ok()) return p;
          parts[i] = *p;
        }
        return GetSlice(*obj, parts[0], parts[1], parts[2]);
      }
      case Expr::Kind::kCall: {
        auto callee = Eval(*e.items[0]);
        if (!callee.ok()) return callee;
        if (!callee->is_callable()) {
          return absl::InvalidArgumentError(absl::StrCat(
              callee->is_undefined()
                  ? "'" + callee->name() + "' is undefined"
                  : absl::StrCat("'", callee->TypeName(), "' object is not callable")));
        }
        auto args = EvalArgs(e);
        if (!args.ok()) return args.status();
        return callee->callable()(*args);
      }
      case Expr::Kind::kFilter: {
        auto operand = Eval(*e.items[0]);
        if (!operand.ok()) return operand;
        auto args = EvalArgs(e);
        if (!args.ok()) return args.status();
        return ApplyFilter(e.name, *operand, *args);
      }
      case Expr::Kind::kTest: {
        auto operand = Eval(*e.items[0]);
        if (!operand.ok()) return operand;
        auto args = EvalArgs(e);
        if (!args.ok()) return args.status();
        auto r = ApplyTest(e.name, *operand, *args);
        if (!r.ok()) return r.status();
        return Value::Bool(*r != e.negated);
      }
      case Expr::Kind::kUnary: {
        auto v = Eval(*e.items[0]);
        if (!v.ok()) return v;
        if (e.name == "not") return Value::Bool(!v->Truthy());
        if (!v->is_number()) {
          return absl::InvalidArgumentError(
              absl::StrCat("bad operand type for unary ", e.name, ": '", v->TypeName(), "'"));
        }
        if (e.name == "+")
          return v->is_float() ? Value::Float(v->float_value()) : Value::Int(v->int_value());
        return v->is_float() ? Value::Float(-v->float_value()) : Value::Int(-v->int_value());
      }
      case Expr::Kind::kBinary:
        return EvalBinary(e);
      case Expr::Kind::kCondition: {
        auto c = Eval(*e.items[1]);
        if (!c.ok()) return c;
        if (c->Truthy()) return Eval(*e.items[0]);
        if (e.items[2] == nullptr) return Value::Undefined("else");
        return Eval(*e.items[2]);
      }
    }
    return Value();
  }

  absl::StatusOr<Value> EvalBinary(const Expr& e) {
    const std::string& op = e.name;
    auto a = Eval(*e.items[0]);
    if (!a.ok()) return a;
    if (op == "and") return a->Truthy() ? Eval(*e.items[1]) : a;
    if (op == "or") return a->Truthy() ? a : Eval(*e.items[1]);
    auto b = Eval(*e.items[1]);
    if (!b.ok()) return b;
    if (op == "~") return Value::String(a->Str() + b->Str());
    if (op == "==") return Value::Bool(a->Equals(*b));
    if (op == "!=") return Value::Bool(!a->Equals(*b));
    if (op == "in" || op == "notin") {
      CallArgs args;
      args.positional.push_back(*b);
      // An undefined container iterates as empty, so nothing is in it.
      if (b->is_undefined()) return Value::Bool(op == "notin");
      if (!b->is_string() && !b->is_list() && !b->is_dict()) {
        return absl::InvalidArgumentError(
            absl::StrCat("argument of type '", b->TypeName(), "' is not iterable"));
      }
      if (b->is_string() && !a->is_string()) {
        return absl::InvalidArgumentError("'in <string>' requires string as left operand");
      }
      auto r = ApplyTest("in", *a, args);
      if (!r.ok()) return r.status();
      return Value::Bool(*r == (op == "in"));
    }
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      CallArgs args;
      args.positional.push_back(*b);
      auto r = ApplyTest(op, *a, args);
      if (!r.ok()) return r.status();
      return Value::Bool(*r);
    }
    if (op == "+" && a->is_string() && b->is_string()) {
      // Markup (from |safe) + str escapes the plain operand, as markupsafe does.
      if (a->is_markup() || b->is_markup()) {
        return Value::Markup((a->is_markup() ? a->string() : HtmlEscape(a->string())) +
                             (b->is_markup() ? b->string() : HtmlEscape(b->string())));
      }
      return Value::String(a->string() + b->string());
    }
    if (op == "+" && a->is_list() && b->is_list() && !a->is_generator() && !b->is_generator()) {
      ValueList items = a->list();
      items.insert(items.end(), b->list().begin(), b->list().end());
      return Value::List(std::move(items));
    }
    if (op == "*" && ((a->is_string() && b->is_int()) || (a->is_int() && b->is_string()))) {
      const Value& s = a->is_string() ? *a : *b;
      const int64_t n = a->is_string() ? b->int_value() : a->int_value();
      std::string out;
      for (int64_t i = 0; i < n && out.size() < max_output_; ++i) out += s.string();
      return Value::String(out);
    }
    if (!a->is_number() || !b->is_number()) {
      if (a->is_undefined() || b->is_undefined()) {
        const Value& u = a->is_undefined() ? *a : *b;
        return absl::InvalidArgumentError(absl::StrCat("'", u.name(), "' is undefined"));
      }
      return absl::InvalidArgumentError(absl::StrCat("unsupported operand type(s) for ", op, ": '",
                                                     a->TypeName(), "' and '", b->TypeName(), "'"));
    }
    const bool ints = !a->is_float() && !b->is_float();
    const int64_t x = a->int_value(), y = b->int_value();
    const double fx = a->float_value(), fy = b->float_value();
    if (op == "+") return ints ? Value::Int(x + y) : Value::Float(fx + fy);
    if (op == "-") return ints ? Value::Int(x - y) : Value::Float(fx - fy);
    if (op == "*") return ints ? Value::Int(x * y) : Value::Float(fx * fy);
    if (op == "**") {
      if (ints && y >= 0) return Value::Int(static_cast<int64_t>(std::pow(fx, fy)));
      return Value::Float(std::pow(fx, fy));
    }
    if ((ints && y == 0) || (!ints && fy == 0)) {
      return absl::InvalidArgumentError("division by zero");
    }
    if (op == "/") return Value::Float(fx / fy);
    if (op == "//") {
      if (ints) return Value::Int(static_cast<int64_t>(std::floor(fx / fy)));
      return Value::Float(std::floor(fx / fy));
    }
    if (op == "%") {
      if (ints) {
        int64_t m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        return Value::Int(m);
      }
      double m = std::fmod(fx, fy);
      if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
      return Value::Float(m);
    }
    return absl::InvalidArgumentError(absl::StrCat("unknown operator ", op));
  }

  std::vector<Value> scopes_;
  size_t max_output_;
  int depth_ = 0;
};

}  // namespace

absl::StatusOr<std::string> Evaluate(const StmtList& body, Value globals, size_t max_output_bytes) {
  return Evaluator(std::move(globals), max_output_bytes).Run(body);
}

}  // namespace restkv::engine::jinja
