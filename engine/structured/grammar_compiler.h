// GrammarCompiler: a request's output constraint (GrammarSpec) turned into a
// CompiledGrammar over one model's vocabulary, with a cache so that the same
// schema, regex, choice list or grammar is compiled once and its mask memo
// (grammar_matcher.h) is shared by every request that sends it.
//
//   GrammarSpec ─front end─► GBNF text ─ParseGbnf─► Grammar ─+vocab─► CompiledGrammar
//     json_schema: JsonSchemaToGbnf     regex: RegexToGbnf
//     json_object: JsonObjectGbnf       choice: "a" | "b" | ...    gbnf: as given
//
// One compiler per engine (Engine::grammar_compiler()); the vocabulary trie is
// built once, in the constructor.
//
// Thread safety: Compile may be called from any thread (the cache is under a
// mutex; compiling itself runs outside it).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/structured/grammar_matcher.h"
#include "engine/structured/token_vocabulary.h"

namespace restkv::engine::structured {

enum class GrammarKind { kJsonSchema, kJsonObject, kRegex, kChoice, kGbnf };

// What the output must match. A plain value filled by the server.
struct GrammarSpec {
  GrammarKind kind = GrammarKind::kJsonObject;
  std::string text;                  // the schema (JSON text), regex or GBNF grammar
  std::vector<std::string> choices;  // kChoice: the output is exactly one of these
};

// "json_schema", "json_object", "regex", "choice", "grammar" (for messages and logs).
const char* GrammarKindName(GrammarKind kind);

class GrammarCompiler {
 public:
  explicit GrammarCompiler(std::shared_ptr<const TokenVocabulary> vocab);

  // The compiled grammar (possibly cached), or InvalidArgument with the
  // reason: malformed JSON, an unsupported JSON Schema keyword (named), a
  // regex or GBNF syntax error (with its position), an empty choice list.
  absl::StatusOr<std::shared_ptr<const CompiledGrammar>> Compile(const GrammarSpec& spec);

  // The GBNF text a spec compiles through (for errors in tests and docs).
  static absl::StatusOr<std::string> ToGbnf(const GrammarSpec& spec);

  [[nodiscard]] const TokenVocabulary& vocab() const { return *vocab_; }

  static constexpr size_t kMaxCached = 256;

 private:
  const std::shared_ptr<const TokenVocabulary> vocab_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const CompiledGrammar>> cache_
      ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);  // insertion order, oldest first
};

}  // namespace restkv::engine::structured
