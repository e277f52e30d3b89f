#include "engine/structured/grammar_compiler.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "engine/structured/gbnf.h"
#include "engine/structured/json_schema_to_gbnf.h"
#include "engine/structured/regex_to_gbnf.h"

namespace restkv::engine::structured {

const char* GrammarKindName(GrammarKind kind) {
  switch (kind) {
    case GrammarKind::kJsonSchema:
      return "json_schema";
    case GrammarKind::kJsonObject:
      return "json_object";
    case GrammarKind::kRegex:
      return "regex";
    case GrammarKind::kChoice:
      return "choice";
    case GrammarKind::kGbnf:
      return "grammar";
  }
  return "unknown";
}

GrammarCompiler::GrammarCompiler(std::shared_ptr<const TokenVocabulary> vocab)
    : vocab_(std::move(vocab)) {}

absl::StatusOr<std::string> GrammarCompiler::ToGbnf(const GrammarSpec& spec) {
  switch (spec.kind) {
    case GrammarKind::kJsonSchema:
      return JsonSchemaToGbnf(spec.text);
    case GrammarKind::kJsonObject:
      return JsonObjectGbnf();
    case GrammarKind::kRegex: {
      RESTKV_ASSIGN_OR_RETURN(std::string expr, RegexToGbnf(spec.text));
      return "root ::= " + expr + "\n";
    }
    case GrammarKind::kChoice: {
      if (spec.choices.empty()) return absl::InvalidArgumentError("the choice list is empty");
      std::vector<std::string> alts;
      for (const std::string& c : spec.choices) alts.push_back(GbnfLiteral(c));
      return "root ::= " + absl::StrJoin(alts, " | ") + "\n";
    }
    case GrammarKind::kGbnf:
      return spec.text;
  }
  return absl::InvalidArgumentError("unknown grammar kind");
}

absl::StatusOr<std::shared_ptr<const CompiledGrammar>> GrammarCompiler::Compile(
    const GrammarSpec& spec) {
  std::string key = absl::StrCat(static_cast<int>(spec.kind), ":", spec.text);
  for (const std::string& c : spec.choices) absl::StrAppend(&key, "\x1f", c.size(), ":", c);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  }
  RESTKV_ASSIGN_OR_RETURN(std::string gbnf, ToGbnf(spec));
  RESTKV_ASSIGN_OR_RETURN(Grammar grammar, ParseGbnf(gbnf));
  auto compiled = std::make_shared<const CompiledGrammar>(std::move(grammar), vocab_);
  std::lock_guard<std::mutex> lock(mu_);
  if (auto [it, inserted] = cache_.emplace(key, compiled); !inserted) return it->second;
  order_.push_back(std::move(key));
  if (order_.size() > kMaxCached) {
    cache_.erase(order_.front());
    order_.pop_front();
  }
  return compiled;
}

}  // namespace restkv::engine::structured
