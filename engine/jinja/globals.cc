// Global functions: range, namespace, dict, raise_exception, strftime_now.
#include <ctime>

#include "absl/strings/str_cat.h"
#include "engine/jinja/builtins.h"

namespace restkv::engine::jinja {
namespace {

absl::StatusOr<Value> Range(CallArgs& args) {
  int64_t start = 0, stop = 0, step = 1;
  const ValueList& p = args.positional;
  for (const Value& v : p) {
    if (!v.is_int()) return absl::InvalidArgumentError("range() arguments must be integers");
  }
  if (p.size() == 1) {
    stop = p[0].int_value();
  } else if (p.size() == 2 || p.size() == 3) {
    start = p[0].int_value();
    stop = p[1].int_value();
    if (p.size() == 3) step = p[2].int_value();
  } else {
    return absl::InvalidArgumentError("range() takes 1 to 3 arguments");
  }
  if (step == 0) return absl::InvalidArgumentError("range() arg 3 must not be zero");
  ValueList out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (out.size() > 100000) return absl::InvalidArgumentError("range() too large");
    out.push_back(Value::Int(i));
  }
  return Value::List(std::move(out));
}

Value FromArgs(Value target, const CallArgs& args) {
  for (const Value& p : args.positional) {
    if (p.is_dict()) {
      for (const auto& [k, v] : p.dict().items()) target.mutable_dict().Set(k, v);
    }
  }
  for (const auto& [k, v] : args.keyword) target.mutable_dict().Set(k, v);
  return target;
}

}  // namespace

void AddGlobals(ValueMap& globals, absl::Time now) {
  globals.Set("range", Value::Function("range", Range));
  globals.Set("namespace",
              Value::Function("namespace", [](CallArgs& args) -> absl::StatusOr<Value> {
                return FromArgs(Value::Namespace(), args);
              }));
  globals.Set("dict", Value::Function("dict", [](CallArgs& args) -> absl::StatusOr<Value> {
                return FromArgs(Value::Dict(), args);
              }));
  globals.Set("raise_exception",
              Value::Function("raise_exception", [](CallArgs& args) -> absl::StatusOr<Value> {
                return absl::InvalidArgumentError(
                    absl::StrCat("template raised: ", Arg(args, 0, "message").Str()));
              }));
  globals.Set("strftime_now",
              Value::Function("strftime_now", [now](CallArgs& args) -> absl::StatusOr<Value> {
                const Value fmt = Arg(args, 0, "format");
                if (!fmt.is_string())
                  return absl::InvalidArgumentError("strftime_now needs a format");
                const std::time_t t = absl::ToTimeT(now);
                std::tm tm{};
                gmtime_r(&t, &tm);
                char buf[256];
                const size_t n = std::strftime(buf, sizeof(buf), fmt.string().c_str(), &tm);
                return Value::String(std::string(buf, n));
              }));
}

}  // namespace restkv::engine::jinja
