// structured_sample: random outputs of structured-output constraints over a
// real model's vocabulary, without running the model, so that an
// independent checker (tests/structured/test_structured_golden.py: Python's
// jsonschema and re) can validate what the token-mask engine lets through.
//
// Reads JSON lines on stdin, one constraint each:
//   {"kind": "json_schema"|"json_object"|"regex"|"choice"|"grammar",
//    "text": "...", "choices": [...], "samples": 5, "seed": 1}
// and prints one JSON line per sample:
//   {"id": i, "sample": j, "text": "...", "complete": true, "tokens": 17}
// or {"id": i, "error": "..."} when the constraint does not compile.
//
// Each step draws an allowed first byte uniformly, then a token starting with
// it, except that with probability 0.4 it draws among allowed tokens that
// contain `"`, `]` or `}` or end the sequence (when there are any), so
// strings, arrays and objects close and outputs stay short. Tokens are real multi-byte BPE
// tokens, so they span terminals and split UTF-8 characters.
//
//   build/tools/structured_sample [--model PATH] [--max-tokens 400] < specs.jsonl
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <random>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/default_model.h"
#include "engine/gguf/gguf_file.h"
#include "engine/structured/grammar_compiler.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_gguf.h"
#include "nlohmann/json.hpp"

namespace restkv {
namespace {

using engine::structured::GrammarKind;

bool KindFromName(const std::string& name, GrammarKind* kind) {
  for (GrammarKind k : {GrammarKind::kJsonSchema, GrammarKind::kJsonObject, GrammarKind::kRegex,
                        GrammarKind::kChoice, GrammarKind::kGbnf}) {
    if (name == engine::structured::GrammarKindName(k)) {
      *kind = k;
      return true;
    }
  }
  return false;
}

// One random walk: {"text", "complete", "tokens"}; Internal if the matcher
// refuses a token its own mask allowed.
absl::StatusOr<nlohmann::json> SampleOnce(
    const std::shared_ptr<const engine::structured::CompiledGrammar>& grammar,
    const engine::structured::TokenVocabulary& vocab, const std::vector<bool>& closing,
    int max_tokens, std::mt19937_64& rng) {
  engine::structured::GrammarMatcher m(grammar);
  engine::structured::TokenBitmask mask;
  std::string text;
  bool complete = false;
  int steps = 0;
  std::vector<int32_t> closers;
  std::vector<std::vector<int32_t>> by_first(257);  // first byte; 256: end tokens
  for (; steps < max_tokens && !complete; ++steps) {
    if (m.FillNextTokenMask(&mask) == 0) break;
    closers.clear();
    for (auto& b : by_first) b.clear();
    for (int32_t t = 0; t < vocab.vocab_size(); ++t) {
      if (!((mask[t >> 6] >> (t & 63)) & 1)) continue;
      const std::string& p = vocab.piece(t);
      by_first[p.empty() ? 256 : static_cast<uint8_t>(p[0])].push_back(t);
      if (closing[t]) closers.push_back(t);
    }
    int32_t t = 0;
    if (!closers.empty() && std::uniform_real_distribution<>(0, 1)(rng) < 0.4) {
      t = closers[rng() % closers.size()];
    } else {
      std::vector<int> buckets;
      for (int b = 0; b < 257; ++b) {
        if (!by_first[b].empty()) buckets.push_back(b);
      }
      const auto& pool = by_first[buckets[rng() % buckets.size()]];
      t = pool[rng() % pool.size()];
    }
    const auto& ends = vocab.end_ids();
    if (std::find(ends.begin(), ends.end(), t) != ends.end()) {
      complete = true;
      break;
    }
    if (!m.AcceptToken(t)) return absl::InternalError("a masked-in token was refused");
    text += vocab.piece(t);
    if (m.IsTerminated()) complete = true;
  }
  return nlohmann::json{{"text", text}, {"complete", complete}, {"tokens", steps}};
}

int Main(int argc, char** argv) {
  CLI::App app{"random outputs of structured-output constraints over a model's vocabulary"};
  std::string model_flag;
  int max_tokens = 400;
  app.add_option("--model", model_flag);
  app.add_option("--max-tokens", max_tokens);
  CLI11_PARSE(app, argc, argv);
  auto path = cli::ResolveModelPath(model_flag);
  if (!path.ok()) {
    std::fprintf(stderr, "%s\n", std::string(path.status().message()).c_str());
    return 1;
  }
  auto file = engine::GgufFile::Open(*path);
  if (!file.ok()) return 1;
  auto data = engine::TokenizerDataFromGguf(**file);
  if (!data.ok()) return 1;
  auto tok = engine::Tokenizer::Create(*std::move(data));
  if (!tok.ok()) return 1;
  auto vocab = engine::structured::TokenVocabulary::FromTokenizer(**tok);
  engine::structured::GrammarCompiler compiler(vocab);
  std::vector<bool> closing(vocab->vocab_size(), false);
  for (int32_t t = 0; t < vocab->vocab_size(); ++t) {
    closing[t] = vocab->piece(t).find_first_of("\"]}") != std::string::npos;
  }
  for (int32_t e : vocab->end_ids()) closing[e] = true;

  std::string line;
  int id = 0;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    const nlohmann::json spec_json = nlohmann::json::parse(line);
    engine::structured::GrammarSpec spec;
    if (!KindFromName(spec_json.value("kind", ""), &spec.kind)) {
      std::printf("%s\n", nlohmann::json({{"id", id++}, {"error", "unknown kind"}}).dump().c_str());
      continue;
    }
    spec.text = spec_json.value("text", "");
    if (spec_json.contains("choices"))
      spec.choices = spec_json["choices"].get<std::vector<std::string>>();
    auto compiled = compiler.Compile(spec);
    if (!compiled.ok()) {
      std::printf("%s\n", nlohmann::json(
                              {{"id", id++}, {"error", std::string(compiled.status().message())}})
                              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                              .c_str());
      continue;
    }
    std::mt19937_64 rng(spec_json.value("seed", 1));
    const int samples = spec_json.value("samples", 1);
    for (int s = 0; s < samples; ++s) {
      absl::StatusOr<nlohmann::json> out = SampleOnce(*compiled, *vocab, closing, max_tokens, rng);
      if (!out.ok()) {
        std::fprintf(stderr, "%s\n", std::string(out.status().message()).c_str());
        return 2;
      }
      (*out)["id"] = id;
      (*out)["sample"] = s;
      std::printf("%s\n",
                  out->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    }
    ++id;
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace restkv

int main(int argc, char** argv) { return restkv::Main(argc, argv); }
