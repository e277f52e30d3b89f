#include "engine/jinja/parser.h"

#include <array>
#include <charconv>
#include <cstdlib>
#include <initializer_list>

#include "absl/strings/str_cat.h"

namespace restkv::engine::jinja {
namespace {

using K = Token::Kind;

ExprPtr MakeExpr(Expr::Kind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

  absl::StatusOr<StmtList> ParseTemplate() {
    StmtList out;
    std::string end;
    absl::Status s = ParseBody({}, &out, &end);
    if (!s.ok()) return s;
    return out;
  }

 private:
  const Token& Peek(size_t ahead = 0) const { return t_[std::min(pos_ + ahead, t_.size() - 1)]; }
  const Token& Next() {
    const Token& tok = t_[pos_];
    if (pos_ + 1 < t_.size()) ++pos_;
    return tok;
  }
  bool IsOp(std::string_view op, size_t ahead = 0) const {
    return Peek(ahead).kind == K::kOperator && Peek(ahead).text == op;
  }
  bool IsName(std::string_view name, size_t ahead = 0) const {
    return Peek(ahead).kind == K::kName && Peek(ahead).text == name;
  }
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("line ", Peek().line, ": ", std::string(what)));
  }
  absl::Status Expect(std::string_view op) {
    if (!IsOp(std::string(op)))
      return Error(absl::StrCat("expected '", std::string(op), "'", Found()));
    Next();
    return absl::OkStatus();
  }
  std::string Found() const {
    const Token& tok = Peek();
    switch (tok.kind) {
      case K::kEnd:
        return " but the template ended";
      case K::kBlockEnd:
        return " but found the end of the tag";
      case K::kVarEnd:
        return " but found '}}'";
      case K::kText:
        return " but found text";
      default:
        return absl::StrCat(" but found '", tok.text, "'");
    }
  }
  absl::Status ExpectBlockEnd() {
    if (Peek().kind != K::kBlockEnd) return Error(absl::StrCat("expected '%}'", Found()));
    Next();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Peek().kind != K::kName) return Error(absl::StrCat("expected a name", Found()));
    return Next().text;
  }
  // Items separated by commas, a trailing comma allowed, up to `close`
  // (consumed): the shape of list and dict literals, call arguments and
  // macro parameters. `item` parses one item.
  template <typename ItemFn>
  absl::Status ParseCommaList(std::string_view close, ItemFn item) {
    while (!IsOp(close)) {
      absl::Status st = item();
      if (!st.ok()) return st;
      if (!IsOp(",")) break;
      Next();
    }
    return Expect(close);
  }

  // Statements until one of `ends` opens a block tag; *end gets its name
  // (the tag's remaining tokens are left for the caller). At top level
  // (`ends` empty) parses to the end of the tokens.
  // `%}`, then the body up to one of `ends` (which one in *end).
  absl::Status ParseBlockBody(std::initializer_list<std::string_view> ends, StmtList* body,
                              std::string* end) {
    absl::Status st = ExpectBlockEnd();
    if (!st.ok()) return st;
    return ParseBody(ends, body, end);
  }

  // `%}`, the body, `{% end_tag %}`: a block with a single body.
  absl::Status ParseClosedBody(std::string_view end_tag, StmtList* body) {
    std::string end;
    absl::Status st = ParseBlockBody({end_tag}, body, &end);
    if (!st.ok()) return st;
    return ExpectBlockEnd();
  }

  absl::Status ParseBody(std::initializer_list<std::string_view> ends, StmtList* out,
                         std::string* end) {
    while (true) {
      const Token& tok = Peek();
      if (tok.kind == K::kEnd) {
        if (ends.size() == 0) return absl::OkStatus();
        return Error(absl::StrCat("missing {% ", std::string(*ends.begin()), " %}"));
      }
      if (tok.kind == K::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->line = tok.line;
        s->text = tok.text;
        out->push_back(std::move(s));
        Next();
        continue;
      }
      if (tok.kind == K::kVarBegin) {
        Next();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = tok.line;
        auto e = ParseExpression();
        if (!e.ok()) return e.status();
        s->expr = std::move(*e);
        if (Peek().kind != K::kVarEnd) return Error(absl::StrCat("expected '}}'", Found()));
        Next();
        out->push_back(std::move(s));
        continue;
      }
      if (tok.kind != K::kBlockBegin) return Error("unexpected token");
      if (Peek(1).kind != K::kName) {
        Next();
        return Error(absl::StrCat("expected a statement name", Found()));
      }
      const std::string name = Peek(1).text;
      for (std::string_view e : ends) {
        if (name == e) {
          Next();
          Next();
          *end = name;
          return absl::OkStatus();
        }
      }
      Next();
      Next();
      auto stmt = ParseStatement(name, tok.line);
      if (!stmt.ok()) return stmt.status();
      if (*stmt != nullptr) out->push_back(std::move(*stmt));
    }
  }

  absl::StatusOr<std::unique_ptr<Stmt>> ParseStatement(const std::string& name, int line) {
    auto s = std::make_unique<Stmt>();
    s->line = line;
    if (name == "if") return ParseIf(std::move(s));
    if (name == "for") return ParseFor(std::move(s));
    if (name == "set") return ParseSet(std::move(s));
    if (name == "macro") return ParseMacro(std::move(s));
    if (name == "call") return ParseCall(std::move(s));
    if (name == "filter") return ParseFilterBlock(std::move(s));
    if (name == "break" || name == "continue") {
      s->kind = name == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      absl::Status st = ExpectBlockEnd();
      if (!st.ok()) return st;
      return s;
    }
    if (name == "generation") {
      // HF's assistant-mask marker: renders its body unchanged.
      s->kind = Stmt::Kind::kIf;
      s->expr = MakeExpr(Expr::Kind::kLiteral, line);
      s->expr->value = Value::Bool(true);
      absl::Status st = ParseClosedBody("endgeneration", &s->body);
      if (!st.ok()) return st;
      return s;
    }
    return absl::InvalidArgumentError(absl::StrCat("line ", line, ": unknown tag '", name, "'"));
  }

  absl::StatusOr<std::unique_ptr<Stmt>> ParseIf(std::unique_ptr<Stmt> s) {
    s->kind = Stmt::Kind::kIf;
    auto cond = ParseExpression();
    if (!cond.ok()) return cond.status();
    s->expr = std::move(*cond);
    std::string end;
    absl::Status st = ParseBlockBody({"elif", "else", "endif"}, &s->body, &end);
    if (!st.ok()) return st;
    if (end == "elif") {
      auto elif = std::make_unique<Stmt>();
      elif->line = Peek().line;
      auto nested = ParseIf(std::move(elif));
      if (!nested.ok()) return nested.status();
      s->else_body.push_back(std::move(*nested));
      return s;
    }
    st = ParseElseAndClose(end, "endif", &s->else_body);
    if (!st.ok()) return st;
    return s;
  }

  // The rest of an if or for block whose body stopped at the tag `end`: an
  // else body up to `closer` when `end` is "else", then the closing tag's %}.
  absl::Status ParseElseAndClose(std::string end, std::string_view closer, StmtList* else_body) {
    if (end == "else") {
      absl::Status st = ParseBlockBody({closer}, else_body, &end);
      if (!st.ok()) return st;
    }
    return ExpectBlockEnd();
  }

  absl::Status ParseTargets(std::vector<std::string>* targets) {
    const bool paren = IsOp("(");
    if (paren) Next();
    while (true) {
      auto n = ExpectName();
      if (!n.ok()) return n.status();
      targets->push_back(*n);
      if (!IsOp(",")) break;
      Next();
    }
    if (paren) return Expect(")");
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<Stmt>> ParseFor(std::unique_ptr<Stmt> s) {
    s->kind = Stmt::Kind::kFor;
    absl::Status st = ParseTargets(&s->targets);
    if (!st.ok()) return st;
    if (!IsName("in")) return Error(absl::StrCat("expected 'in'", Found()));
    Next();
    auto iter = ParseOr(/*allow_condition=*/false);
    if (!iter.ok()) return iter.status();
    s->expr = std::move(*iter);
    if (IsName("if")) {
      Next();
      auto f = ParseExpression();
      if (!f.ok()) return f.status();
      s->filter = std::move(*f);
    }
    if (IsName("recursive")) return Error("recursive loops are not supported");
    std::string end;
    st = ParseBlockBody({"else", "endfor"}, &s->body, &end);
    if (!st.ok()) return st;
    st = ParseElseAndClose(end, "endfor", &s->else_body);
    if (!st.ok()) return st;
    return s;
  }

  absl::StatusOr<std::unique_ptr<Stmt>> ParseSet(std::unique_ptr<Stmt> s) {
    s->kind = Stmt::Kind::kSet;
    if (Peek().kind == K::kName && IsOp(".", 1)) {
      s->targets.push_back(Next().text);
      Next();
      auto attr = ExpectName();
      if (!attr.ok()) return attr.status();
      s->attr = *attr;
    } else {
      absl::Status st = ParseTargets(&s->targets);
      if (!st.ok()) return st;
    }
    if (Peek().kind == K::kBlockEnd) {  // block set
      if (s->targets.size() != 1 || !s->attr.empty()) return Error("block set needs one name");
      absl::Status st = ParseClosedBody("endset", &s->body);
      if (!st.ok()) return st;
      return s;
    }
    absl::Status st = Expect("=");
    if (!st.ok()) return st;
    auto value = ParseTupleOrExpression();
    if (!value.ok()) return value.status();
    s->expr = std::move(*value);
    st = ExpectBlockEnd();
    if (!st.ok()) return st;
    return s;
  }

  absl::Status ParseParams(Stmt* s) {
    absl::Status st = Expect("(");
    if (!st.ok()) return st;
    return ParseCommaList(")", [&]() -> absl::Status {
      auto n = ExpectName();
      if (!n.ok()) return n.status();
      ExprPtr def;
      if (IsOp("=")) {
        Next();
        auto d = ParseExpression();
        if (!d.ok()) return d.status();
        def = std::move(*d);
      }
      s->params.emplace_back(*n, std::move(def));
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::unique_ptr<Stmt>> ParseMacro(std::unique_ptr<Stmt> s) {
    s->kind = Stmt::Kind::kMacro;
    auto n = ExpectName();
    if (!n.ok()) return n.status();
    s->text = *n;
    absl::Status st = ParseParams(s.get());
    if (!st.ok()) return st;
    std::string end;
    st = ParseBlockBody({"endmacro"}, &s->body, &end);
    if (!st.ok()) return st;
    if (Peek().kind == K::kName) Next();  // {% endmacro name %}
    st = ExpectBlockEnd();
    if (!st.ok()) return st;
    return s;
  }

  absl::StatusOr<std::unique_ptr<Stmt>> ParseCall(std::unique_ptr<Stmt> s) {
    s->kind = Stmt::Kind::kCallBlock;
    if (IsOp("(")) {
      absl::Status st = ParseParams(s.get());
      if (!st.ok()) return st;
    }
    auto call = ParseExpression();
    if (!call.ok()) return call.status();
    if ((*call)->kind != Expr::Kind::kCall) return Error("expected a call in {% call %}");
    s->expr = std::move(*call);
    absl::Status st = ParseClosedBody("endcall", &s->body);
    if (!st.ok()) return st;
    return s;
  }

  absl::StatusOr<std::unique_ptr<Stmt>> ParseFilterBlock(std::unique_ptr<Stmt> s) {
    s->kind = Stmt::Kind::kFilterBlock;
    ExprPtr chain;  // null operand: the body's text
    while (true) {
      auto f = ParseFilter(std::move(chain));
      if (!f.ok()) return f.status();
      chain = std::move(*f);
      if (!IsOp("|")) break;
      Next();
    }
    s->expr = std::move(chain);
    absl::Status st = ParseClosedBody("endfilter", &s->body);
    if (!st.ok()) return st;
    return s;
  }

  // ---- expressions ----

  absl::StatusOr<ExprPtr> ParseTupleOrExpression() {
    const int line = Peek().line;
    auto first = ParseExpression();
    if (!first.ok()) return first;
    if (!IsOp(",")) return first;
    auto tuple = MakeExpr(Expr::Kind::kTuple, line);
    tuple->items.push_back(std::move(*first));
    while (IsOp(",")) {
      Next();
      if (Peek().kind == K::kBlockEnd || Peek().kind == K::kVarEnd) break;
      auto e = ParseExpression();
      if (!e.ok()) return e;
      tuple->items.push_back(std::move(*e));
    }
    return tuple;
  }

  absl::StatusOr<ExprPtr> ParseExpression() { return ParseOr(/*allow_condition=*/true); }

  absl::StatusOr<ExprPtr> ParseOr(bool allow_condition) {
    auto left = ParseLevel(kOrLevel);
    if (!left.ok()) return left;
    ExprPtr node = std::move(*left);
    if (allow_condition && IsName("if")) {
      const int line = Next().line;
      auto cond = ParseOr(false);
      if (!cond.ok()) return cond;
      auto c = MakeExpr(Expr::Kind::kCondition, line);
      c->items.push_back(std::move(node));
      c->items.push_back(std::move(*cond));
      if (IsName("else")) {
        Next();
        auto other = ParseOr(true);
        if (!other.ok()) return other;
        c->items.push_back(std::move(*other));
      } else {
        c->items.push_back(nullptr);
      }
      return c;
    }
    return node;
  }

  static ExprPtr Binary(std::string op, ExprPtr a, ExprPtr b, int line) {
    auto e = MakeExpr(Expr::Kind::kBinary, line);
    e->name = std::move(op);
    e->items.push_back(std::move(a));
    e->items.push_back(std::move(b));
    return e;
  }

  // The left-associative binary levels, loosest first: `or` and `and`
  // (words), then + -, ~, * / // %, **. The operands of `and` are `not`
  // expressions (which hold the comparisons, whose operands are + -); those
  // of ** are unary expressions with their filters.
  static constexpr size_t kOrLevel = 0, kAndLevel = 1, kAddLevel = 2;
  static constexpr std::array<std::array<std::string_view, 4>, 6> kLevels = {
      {{"or"}, {"and"}, {"+", "-"}, {"~"}, {"*", "/", "//", "%"}, {"**"}}};

  absl::StatusOr<ExprPtr> Operand(size_t level) {
    if (level == kAndLevel) return ParseNot();
    if (level + 1 == kLevels.size()) return ParseUnary(true);
    return ParseLevel(level + 1);
  }

  // The operator of `level` the input continues with, or empty.
  std::string_view LevelOperator(size_t level) const {
    for (std::string_view op : kLevels[level]) {
      if (op.empty()) break;
      if (level <= kAndLevel ? IsName(op) : IsOp(op)) return op;
    }
    return {};
  }

  absl::StatusOr<ExprPtr> ParseLevel(size_t level) {
    auto left = Operand(level);
    if (!left.ok()) return left;
    ExprPtr node = std::move(*left);
    for (std::string_view op = LevelOperator(level); !op.empty(); op = LevelOperator(level)) {
      const int line = Next().line;
      auto right = Operand(level);
      if (!right.ok()) return right;
      node = Binary(std::string(op), std::move(node), std::move(*right), line);
    }
    return node;
  }

  absl::StatusOr<ExprPtr> ParseNot() {
    if (IsName("not")) {
      const int line = Next().line;
      auto operand = ParseNot();
      if (!operand.ok()) return operand;
      auto e = MakeExpr(Expr::Kind::kUnary, line);
      e->name = "not";
      e->items.push_back(std::move(*operand));
      return e;
    }
    return ParseCompare();
  }

  absl::StatusOr<ExprPtr> ParseCompare() {
    const int line = Peek().line;
    auto left = ParseLevel(kAddLevel);
    if (!left.ok()) return left;
    ExprPtr node = std::move(*left);
    // a < b < c is (a < b) and (b < c); chains are rare in templates, so the
    // middle operand is evaluated twice rather than cached.
    std::vector<std::pair<std::string, ExprPtr>> ops;
    while (true) {
      std::string op;
      if (Peek().kind == K::kOperator &&
          (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" || Peek().text == ">" ||
           Peek().text == "<=" || Peek().text == ">=")) {
        op = Next().text;
      } else if (IsName("in")) {
        Next();
        op = "in";
      } else if (IsName("not") && IsName("in", 1)) {
        Next();
        Next();
        op = "notin";
      } else {
        break;
      }
      auto right = ParseLevel(kAddLevel);
      if (!right.ok()) return right;
      ops.emplace_back(op, std::move(*right));
    }
    if (ops.empty()) return node;
    if (ops.size() == 1)
      return Binary(ops[0].first, std::move(node), std::move(ops[0].second), line);
    return Error("chained comparisons are not supported");
  }

  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter) {
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      const Token& op = Next();
      auto operand = ParseUnary(false);
      if (!operand.ok()) return operand;
      node = MakeExpr(Expr::Kind::kUnary, op.line);
      node->name = op.text;
      node->items.push_back(std::move(*operand));
    } else {
      auto p = ParsePrimary();
      if (!p.ok()) return p;
      node = std::move(*p);
    }
    auto post = ParsePostfix(std::move(node));
    if (!post.ok()) return post;
    node = std::move(*post);
    if (with_filter) return ParseFilterExpr(std::move(node));
    return node;
  }

  absl::StatusOr<ExprPtr> ParsePrimary() {
    const Token& tok = Peek();
    switch (tok.kind) {
      case K::kName: {
        Next();
        auto e = MakeExpr(Expr::Kind::kLiteral, tok.line);
        if (tok.text == "true" || tok.text == "True") {
          e->value = Value::Bool(true);
        } else if (tok.text == "false" || tok.text == "False") {
          e->value = Value::Bool(false);
        } else if (tok.text == "none" || tok.text == "None") {
          e->value = Value::None();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = tok.text;
        }
        return e;
      }
      case K::kString: {
        std::string s;
        const int line = tok.line;
        while (Peek().kind == K::kString) s += Next().text;
        auto e = MakeExpr(Expr::Kind::kLiteral, line);
        e->value = Value::String(std::move(s));
        return e;
      }
      case K::kInt: {
        Next();
        auto e = MakeExpr(Expr::Kind::kLiteral, tok.line);
        int64_t v = 0;
        std::from_chars(tok.text.data(), tok.text.data() + tok.text.size(), v);
        e->value = Value::Int(v);
        return e;
      }
      case K::kFloat: {
        Next();
        auto e = MakeExpr(Expr::Kind::kLiteral, tok.line);
        e->value = Value::Float(std::strtod(tok.text.c_str(), nullptr));
        return e;
      }
      case K::kOperator:
        if (tok.text == "(") {
          Next();
          if (IsOp(")")) {
            Next();
            return MakeExpr(Expr::Kind::kTuple, tok.line);
          }
          auto inner = ParseTupleOrExpression();
          if (!inner.ok()) return inner;
          if (IsOp(",")) Next();
          absl::Status st = Expect(")");
          if (!st.ok()) return st;
          return inner;
        }
        if (tok.text == "[") {
          Next();
          auto list = MakeExpr(Expr::Kind::kList, tok.line);
          absl::Status st = ParseCommaList("]", [&] { return ParseItem(list.get()); });
          if (!st.ok()) return st;
          return list;
        }
        if (tok.text == "{") {
          Next();
          auto dict = MakeExpr(Expr::Kind::kDict, tok.line);
          // Keys and values alternate in items.
          absl::Status st = ParseCommaList("}", [&] {
            absl::Status item = ParseItem(dict.get());
            if (item.ok()) item = Expect(":");
            if (item.ok()) item = ParseItem(dict.get());
            return item;
          });
          if (!st.ok()) return st;
          return dict;
        }
        break;
      default:
        break;
    }
    return Error(absl::StrCat("expected an expression", Found()));
  }

  // One expression appended to e->items.
  absl::Status ParseItem(Expr* e) {
    auto v = ParseExpression();
    if (!v.ok()) return v.status();
    e->items.push_back(std::move(*v));
    return absl::OkStatus();
  }

  absl::Status ParseCallArgs(Expr* call) {
    absl::Status st = Expect("(");
    if (!st.ok()) return st;
    return ParseCommaList(")", [&]() -> absl::Status {
      if (Peek().kind != K::kName || !IsOp("=", 1)) return ParseItem(call);
      std::string name = Next().text;
      Next();
      auto v = ParseExpression();
      if (!v.ok()) return v.status();
      call->kwargs.emplace_back(std::move(name), std::move(*v));
      return absl::OkStatus();
    });
  }

  // callee(arguments), at a "(".
  absl::StatusOr<ExprPtr> ParseCall(ExprPtr callee) {
    auto e = MakeExpr(Expr::Kind::kCall, Peek().line);
    e->items.push_back(std::move(callee));
    absl::Status st = ParseCallArgs(e.get());
    if (!st.ok()) return st;
    return e;
  }

  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node) {
    while (true) {
      if (IsOp(".")) {
        const int line = Next().line;
        auto e = MakeExpr(Expr::Kind::kAttr, line);
        if (Peek().kind == K::kInt) {
          e->kind = Expr::Kind::kSubscript;
          auto idx = MakeExpr(Expr::Kind::kLiteral, line);
          idx->value = Value::Int(std::strtoll(Next().text.c_str(), nullptr, 10));
          e->items.push_back(std::move(node));
          e->items.push_back(std::move(idx));
        } else {
          auto n = ExpectName();
          if (!n.ok()) return n.status();
          e->name = *n;
          e->items.push_back(std::move(node));
        }
        node = std::move(e);
      } else if (IsOp("[")) {
        const int line = Next().line;
        ExprPtr parts[3];
        int colons = 0;
        for (int part = 0; part < 3; ++part) {
          if (!IsOp(":") && !IsOp("]")) {
            auto v = ParseExpression();
            if (!v.ok()) return v;
            parts[part] = std::move(*v);
          }
          if (IsOp(":") && part < 2) {
            Next();
            ++colons;
            continue;
          }
          break;
        }
        absl::Status st = Expect("]");
        if (!st.ok()) return st;
        auto e = MakeExpr(colons == 0 ? Expr::Kind::kSubscript : Expr::Kind::kSlice, line);
        e->items.push_back(std::move(node));
        if (colons == 0) {
          if (parts[0] == nullptr) return Error("empty subscript");
          e->items.push_back(std::move(parts[0]));
        } else {
          for (auto& p : parts) e->items.push_back(std::move(p));
        }
        node = std::move(e);
      } else if (IsOp("(")) {
        auto call = ParseCall(std::move(node));
        if (!call.ok()) return call;
        node = std::move(*call);
      } else {
        return node;
      }
    }
  }

  absl::StatusOr<ExprPtr> ParseFilter(ExprPtr operand) {
    const int line = Peek().line;
    auto name = ExpectName();
    if (!name.ok()) return name.status();
    std::string full = *name;
    while (IsOp(".")) {  // dotted filter names
      Next();
      auto part = ExpectName();
      if (!part.ok()) return part.status();
      absl::StrAppend(&full, ".", *part);
    }
    auto e = MakeExpr(Expr::Kind::kFilter, line);
    e->name = full;
    e->items.push_back(std::move(operand));
    if (IsOp("(")) {
      absl::Status st = ParseCallArgs(e.get());
      if (!st.ok()) return st;
    }
    return e;
  }

  bool StartsTestArgument() const {
    const Token& tok = Peek();
    if (tok.kind == K::kString || tok.kind == K::kInt || tok.kind == K::kFloat) return true;
    if (tok.kind == K::kOperator) return tok.text == "[" || tok.text == "{" || tok.text == "-";
    if (tok.kind == K::kName) {
      static constexpr std::string_view kStop[] = {"else", "or", "and", "if", "is", "in", "not"};
      for (std::string_view s : kStop) {
        if (tok.text == s) return false;
      }
      return true;
    }
    return false;
  }

  absl::StatusOr<ExprPtr> ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        Next();
        auto f = ParseFilter(std::move(node));
        if (!f.ok()) return f;
        node = std::move(*f);
      } else if (IsName("is")) {
        const int line = Next().line;
        auto e = MakeExpr(Expr::Kind::kTest, line);
        if (IsName("not")) {
          Next();
          e->negated = true;
        }
        auto name = ExpectName();
        if (!name.ok()) return name.status();
        e->name = *name;
        e->items.push_back(std::move(node));
        if (IsOp("(")) {
          absl::Status st = ParseCallArgs(e.get());
          if (!st.ok()) return st;
        } else if (StartsTestArgument()) {
          auto arg = ParsePrimary();
          if (!arg.ok()) return arg;
          auto post = ParsePostfix(std::move(*arg));
          if (!post.ok()) return post;
          e->items.push_back(std::move(*post));
        }
        node = std::move(e);
      } else if (IsOp("(")) {
        auto call = ParseCall(std::move(node));
        if (!call.ok()) return call;
        node = std::move(*call);
      } else {
        return node;
      }
    }
  }

  const std::vector<Token>& t_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<StmtList> Parse(const std::vector<Token>& tokens) {
  return Parser(tokens).ParseTemplate();
}

}  // namespace restkv::engine::jinja
