// The syntax tree of a parsed template (engine/jinja/parser.h builds it,
// engine/jinja/evaluator.h walks it). Plain data; one node type for
// expressions and one for statements, told apart by `kind`.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/jinja/value.h"

namespace restkv::engine::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // value
    kName,       // name
    kList,       // items
    kTuple,      // items (evaluates to a list)
    kDict,       // items: key, value, key, value, ...
    kAttr,       // items[0].name
    kSubscript,  // items[0][items[1]]
    kSlice,      // items[0][items[1]:items[2]:items[3]] (null pointers for omitted parts)
    kCall,       // items[0](items[1..], kwargs)
    kFilter,     // items[0] | name(items[1..], kwargs); items[0] null in a filter block
    kTest,       // items[0] is [not] name(items[1..]); negated
    kUnary,      // op items[0]: "not", "-", "+"
    kBinary,     // items[0] op items[1]: or and + - * / // % ** ~ == != < > <= >= in notin
    kCondition,  // items[0] if items[1] else items[2] (items[2] may be null)
  };
  Kind kind;
  int line = 0;
  std::string name;  // name, attribute, filter/test name or operator
  Value value;
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  bool negated = false;
};

struct Stmt;
using StmtList = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // expr, body, else_body (elif chains nest an kIf in else_body)
    kFor,          // targets in expr [if filter], body, else_body
    kSet,          // targets (or target.attr when attr non-empty) = expr; or block set: body
    kMacro,        // name(params with defaults) body
    kCallBlock,    // {% call name(args) %}body{% endcall %}: expr is the call, body is caller()
    kFilterBlock,  // {% filter f %}body: expr is the filter chain over a null operand
    kBreak,
    kContinue,
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;  // for-loop condition
  std::vector<std::string> targets;
  std::string attr;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters (default may be null)
  StmtList body;
  StmtList else_body;
};

}  // namespace restkv::engine::jinja
