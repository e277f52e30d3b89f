// Test helpers: small vocabularies and "does this grammar accept this text"
// over a byte vocabulary, for the structured-output tests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/structured/gbnf.h"
#include "engine/structured/grammar_compiler.h"
#include "engine/structured/grammar_matcher.h"
#include "engine/structured/token_vocabulary.h"

namespace restkv::engine::structured {

// Tokens 0..255 are the single bytes, then `extra`, then one end token.
inline std::shared_ptr<const TokenVocabulary> ByteVocab(
    const std::vector<std::string>& extra = {}) {
  std::vector<std::string> pieces;
  for (int b = 0; b < 256; ++b) pieces.emplace_back(1, static_cast<char>(b));
  pieces.insert(pieces.end(), extra.begin(), extra.end());
  pieces.emplace_back("");  // the end token
  const int32_t end = static_cast<int32_t>(pieces.size() - 1);
  return std::make_shared<const TokenVocabulary>(std::move(pieces), std::vector<int32_t>{end});
}

// Whether `text` fed byte by byte is a complete sentence of `g`.
inline bool AcceptsText(const std::shared_ptr<const CompiledGrammar>& g, const std::string& text) {
  GrammarMatcher m(g);
  for (const char c : text) {
    if (!m.AcceptToken(static_cast<uint8_t>(c))) return false;
  }
  return m.CanEnd();
}

inline std::shared_ptr<const CompiledGrammar> CompileOrDie(
    const GrammarSpec& spec, std::shared_ptr<const TokenVocabulary> v) {
  GrammarCompiler c(std::move(v));
  auto g = c.Compile(spec);
  if (!g.ok()) return nullptr;
  return *g;
}

}  // namespace restkv::engine::structured
