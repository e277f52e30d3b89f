// libFuzzer target for the Jinja interpreter: any template source must
// parse or fail with a "line N: " message, and a parsed template must
// render (over a small chat context) or fail the same way, without
// crashing, hanging or exceeding the output bound.
//
// Built and run by tests/fuzz/run_corpus_fuzzer.sh jinja.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "absl/strings/match.h"
#include "engine/jinja/template.h"

namespace {

using restkv::engine::jinja::RenderOptions;
using restkv::engine::jinja::Template;
using restkv::engine::jinja::Value;

Value Context() {
  Value user = Value::Dict();
  user.mutable_dict().Set("role", Value::String("user"));
  user.mutable_dict().Set("content", Value::String(" hi\n"));
  Value ctx = Value::Dict();
  ctx.mutable_dict().Set("messages", Value::List({user, user}));
  ctx.mutable_dict().Set("tools", Value::None());
  ctx.mutable_dict().Set("add_generation_prompt", Value::Bool(true));
  ctx.mutable_dict().Set("bos_token", Value::String("<s>"));
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Template> t = Template::Parse(source);
  if (!t.ok()) {
    if (!absl::StartsWith(t.status().message(), "line ")) std::abort();
    return 0;
  }
  RenderOptions options;
  options.max_output_bytes = 1 << 16;
  absl::StatusOr<std::string> out = t->Render(Context(), options);
  if (!out.ok() && !absl::StartsWith(out.status().message(), "line ")) std::abort();
  if (out.ok() && out->size() > (1 << 16) + (1 << 16)) std::abort();
  return 0;
}
