#include "eval/ruler_tasks.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "eval/haystack_prompt.h"
#include "eval/needle_words.h"

namespace restkv::eval {
namespace {

struct NiahSpec {
  enum Hay { kNoise, kEssay, kNeedles } hay;
  bool uuid_values;
  bool uuid_keys;
  int keys, values, queries;
};

const std::map<std::string, NiahSpec>& NiahSpecs() {
  static const auto* specs = new std::map<std::string, NiahSpec>{
      {"niah_single_1", {NiahSpec::kNoise, false, false, 1, 1, 1}},
      {"niah_single_2", {NiahSpec::kEssay, false, false, 1, 1, 1}},
      {"niah_single_3", {NiahSpec::kEssay, true, false, 1, 1, 1}},
      {"niah_multikey_1", {NiahSpec::kEssay, false, false, 4, 1, 1}},
      {"niah_multikey_2", {NiahSpec::kNeedles, false, false, 1, 1, 1}},
      {"niah_multikey_3", {NiahSpec::kNeedles, true, true, 1, 1, 1}},
      {"niah_multivalue", {NiahSpec::kEssay, false, false, 1, 4, 1}},
      {"niah_multiquery", {NiahSpec::kEssay, false, false, 4, 1, 4}},
  };
  return *specs;
}

template <typename T>
void Shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i)
    std::swap(v[i - 1], v[UniformInt(rng, 0, static_cast<int64_t>(i) - 1)]);
}

// `count` depths from RULER's grid of 40 evenly spaced depths, ascending.
std::vector<double> SampleDepths(Rng& rng, int count) {
  std::vector<double> grid;
  for (int i = 0; i < 40; ++i) grid.push_back(std::round(100.0 * i / 39.0) / 100.0);
  Shuffle(grid, rng);
  grid.resize(std::min<int>(count, 40));
  while (static_cast<int>(grid.size()) < count) grid.push_back(UniformInt(rng, 0, 100) / 100.0);
  std::sort(grid.begin(), grid.end());
  return grid;
}

std::string QueryList(const std::vector<std::string>& keys) {
  if (keys.size() == 1) return keys[0];
  std::vector<std::string> head(keys.begin(), keys.end() - 1);
  return absl::StrJoin(head, ", ") + ", and " + keys.back();
}

absl::StatusOr<TaskSample> MakeNiah(const std::string& task, const NiahSpec& spec,
                                    const engine::Tokenizer& tok, const TaskResources& res,
                                    int32_t budget, Rng& rng) {
  const std::string kind = spec.uuid_values ? "uuids" : "numbers";
  auto new_key = [&] { return spec.uuid_keys ? RandomUuid(rng) : RandomKey(rng); };
  auto new_value = [&] { return spec.uuid_values ? RandomUuid(rng) : RandomNumber7(rng); };
  std::vector<std::string> keys;
  while (static_cast<int>(keys.size()) < spec.keys) {
    std::string k = new_key();
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  std::vector<std::vector<std::string>> values(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const int nv = i == 0 ? spec.values : 1;
    for (int j = 0; j < nv; ++j) values[i].push_back(new_value());
  }
  auto needle_text = [&](const std::string& k, const std::string& v) {
    return absl::StrFormat("One of the special magic %s for %s is: %s.", kind, k, v);
  };
  std::vector<std::string> needle_texts;
  for (size_t i = 0; i < keys.size(); ++i) {
    for (const std::string& v : values[i]) needle_texts.push_back(needle_text(keys[i], v));
  }
  Shuffle(needle_texts, rng);
  const std::vector<double> depths = SampleDepths(rng, static_cast<int>(needle_texts.size()));
  std::vector<Needle> needles;
  for (size_t i = 0; i < needle_texts.size(); ++i) needles.push_back({needle_texts[i], depths[i]});

  Haystack distractors;
  const Haystack* hay = spec.hay == NiahSpec::kNoise ? &res.noise : &res.essay;
  if (spec.hay == NiahSpec::kNeedles) {
    // A haystack made of other keys' needles (enough for any context: the
    // builder cycles if it runs out).
    distractors.name = "needles";
    std::set<std::string> used(keys.begin(), keys.end());
    for (int i = 0; i < 1500; ++i) {
      std::string k = new_key();
      if (!used.insert(k).second) continue;
      distractors.sentences.push_back(needle_text(k, new_value()));
    }
    hay = &distractors;
  }
  std::vector<std::string> queried(keys.begin(), keys.begin() + spec.queries);
  const std::string query = QueryList(queried);
  const std::string prefix = absl::StrFormat(
      "Some special magic %s are hidden within the following text. Make sure to memorize it. I "
      "will quiz you "
      "about the %s afterwards.\n",
      kind, kind);
  const std::string suffix = absl::StrFormat(
      "\nWhat are all the special magic %s for %s mentioned in the provided text? The special "
      "magic %s for %s "
      "mentioned in the provided text are",
      kind, query, kind, query);
  auto built = BuildHaystackPrompt(tok, *hay, prefix, needles, suffix, budget);
  if (!built.ok()) return built.status();
  TaskSample s;
  s.task = task;
  s.prompt = std::move(built->text);
  s.tokens = std::move(built->tokens);
  for (int i = 0; i < spec.queries; ++i) {
    for (const std::string& v : values[i]) s.answers.push_back(v);
  }
  return s;
}

absl::StatusOr<TaskSample> MakeVt(const engine::Tokenizer& tok, const TaskResources& res,
                                  int32_t budget, Rng& rng) {
  const int hops = 4;
  std::vector<std::string> vars;
  while (static_cast<int>(vars.size()) < hops + 1) {
    std::string v = RandomVariable(rng);
    if (std::find(vars.begin(), vars.end(), v) == vars.end()) vars.push_back(v);
  }
  const std::string value = std::to_string(UniformInt(rng, 10000, 99999));
  std::vector<Needle> needles;
  const std::vector<double> depths = SampleDepths(rng, hops + 1);
  needles.push_back({absl::StrFormat("VAR %s = %s.", vars[0], value), depths[0]});
  for (int i = 1; i <= hops; ++i) {
    needles.push_back({absl::StrFormat("VAR %s = VAR %s.", vars[i], vars[i - 1]), depths[i]});
  }
  const std::string prefix =
      "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n";
  const std::string suffix = absl::StrFormat(
      "\nQuestion: Find all variables that are assigned the value %s in the text above. Answer: "
      "According to "
      "the chain(s) of variable assignment in the text above, %d variables are assgined the value "
      "%s, they "
      "are: ",
      value, hops + 1, value);
  auto built = BuildHaystackPrompt(tok, res.noise, prefix, needles, suffix, budget);
  if (!built.ok()) return built.status();
  TaskSample s;
  s.task = "vt";
  s.prompt = std::move(built->text);
  s.tokens = std::move(built->tokens);
  s.answers = vars;
  return s;
}

// Largest n in [lo, hi] with fits(n), assuming monotonicity; lo - 1 if none.
template <typename F>
int64_t LargestFitting(int64_t lo, int64_t hi, F fits) {
  int64_t best = lo - 1;
  while (lo <= hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (fits(mid)) {
      best = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return best;
}

absl::StatusOr<TaskSample> MakeCwe(const engine::Tokenizer& tok, const TaskResources& res,
                                   int32_t budget, Rng& rng) {
  const int num_cw = 10, freq_cw = 30, freq_ucw = 3;
  if (res.words.size() < 100)
    return absl::FailedPreconditionError("cwe needs a word list (wamerican)");
  std::vector<std::string> pool = res.words;
  Shuffle(pool, rng);
  const std::vector<std::string> common(pool.begin(), pool.begin() + num_cw);
  const uint64_t order_seed = rng();
  auto render = [&](int64_t num_ucw) {
    std::vector<std::string> list;
    for (const auto& w : common) list.insert(list.end(), freq_cw, w);
    for (int64_t i = 0; i < num_ucw; ++i) list.insert(list.end(), freq_ucw, pool[num_cw + i]);
    Rng order(order_seed);
    Shuffle(list, order);
    std::string ctx;
    for (size_t i = 0; i < list.size(); ++i)
      ctx += absl::StrFormat("%s%d. %s", i ? " " : "", i + 1, list[i]);
    return absl::StrFormat(
        "Below is a numbered list of words. In these words, some appear more often than others. "
        "Memorize the "
        "ones that appear most often.\n%s\nQuestion: What are the 10 most common words in the "
        "above list? "
        "Answer: The top 10 words that appear most often in the list are:",
        ctx);
  };
  auto fits = [&](int64_t n) {
    return static_cast<int32_t>(tok.Encode(render(n), true, false).size()) <= budget;
  };
  // Each uncommon word adds three numbered items, at least six tokens.
  const int64_t n = LargestFitting(
      0, std::min<int64_t>(static_cast<int64_t>(pool.size()) - num_cw, budget / 6), fits);
  if (n < 0)
    return absl::InvalidArgumentError(absl::StrFormat("cwe does not fit in %d tokens", budget));
  TaskSample s;
  s.task = "cwe";
  s.prompt = render(n);
  s.tokens = tok.Encode(s.prompt, true, false);
  s.answers = common;
  return s;
}

absl::StatusOr<TaskSample> MakeFwe(const engine::Tokenizer& tok, int32_t budget, Rng& rng) {
  const int vocab = 2000;
  const double alpha = 2.0;
  std::vector<std::string> codes;
  std::set<std::string> seen;
  while (static_cast<int>(codes.size()) < vocab) {
    std::string w(6, 'a');
    for (char& c : w) c = static_cast<char>('a' + UniformInt(rng, 0, 25));
    if (seen.insert(w).second) codes.push_back(w);
  }
  // Zipf(alpha) over ranks 1..vocab by inverse CDF.
  std::vector<double> cdf(vocab);
  double z = 0;
  for (int r = 0; r < vocab; ++r) cdf[r] = (z += 1.0 / std::pow(r + 1, alpha));
  std::vector<int> draws;
  auto draw_until = [&](size_t n) {
    while (draws.size() < n) {
      const double u = static_cast<double>(rng() >> 11) / 9007199254740992.0 * z;
      draws.push_back(static_cast<int>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin()));
    }
  };
  auto render = [&](int64_t n) {
    draw_until(static_cast<size_t>(n));
    std::string ctx;
    for (int64_t i = 0; i < n; ++i) ctx += (i ? " " : "") + codes[draws[i]];
    return absl::StrFormat(
        "Read the following coded text and track the frequency of each coded word. Find the three "
        "most "
        "frequently appeared coded words. %s\nQuestion: Do not provide any explanation. Please "
        "ignore the dots "
        "'....'. What are the three most frequently appeared words in the above coded text? "
        "Answer: According "
        "to the coded text above, the three most frequently appeared words are:",
        ctx);
  };
  auto fits = [&](int64_t n) {
    return static_cast<int32_t>(tok.Encode(render(n), true, false).size()) <= budget;
  };
  const int64_t n = LargestFitting(3, budget, fits);
  if (n < 3)
    return absl::InvalidArgumentError(absl::StrFormat("fwe does not fit in %d tokens", budget));
  TaskSample s;
  s.task = "fwe";
  s.prompt = render(n);
  s.tokens = tok.Encode(s.prompt, true, false);
  std::map<int, int> count;
  for (int64_t i = 0; i < n; ++i) ++count[draws[i]];
  std::vector<std::pair<int, int>> by(count.begin(), count.end());
  std::stable_sort(by.begin(), by.end(), [](auto a, auto b) { return a.second > b.second; });
  for (int i = 0; i < 3 && i < static_cast<int>(by.size()); ++i)
    s.answers.push_back(codes[by[i].first]);
  return s;
}

}  // namespace

const std::vector<std::string>& RulerTaskNames() {
  static const auto* names = new std::vector<std::string>{"niah_single_1",
                                                          "niah_single_2",
                                                          "niah_single_3",
                                                          "niah_multikey_1",
                                                          "niah_multikey_2",
                                                          "niah_multikey_3",
                                                          "niah_multivalue",
                                                          "niah_multiquery",
                                                          "vt",
                                                          "cwe",
                                                          "fwe"};
  return *names;
}

int32_t RulerMaxTokens(const std::string& task) {
  if (task == "vt") return 30;
  if (task == "cwe") return 120;
  if (task == "fwe") return 50;
  return 128;
}

absl::StatusOr<TaskResources> LoadTaskResources(const std::string& essay_source,
                                                const std::string& words_path) {
  TaskResources r;
  auto essay = LoadHaystack(essay_source);
  if (!essay.ok()) return essay.status();
  r.essay = std::move(*essay);
  r.noise = *LoadHaystack("noise");
  std::ifstream in(words_path);
  if (!in) {
    return absl::NotFoundError(absl::StrFormat(
        "cannot read the word list %s (Debian package wamerican; scripts/setup installs it)",
        words_path));
  }
  std::set<std::string> seen;
  std::string w;
  while (std::getline(in, w)) {
    if (w.size() < 3 || w.size() > 10) continue;
    if (!std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; })) continue;
    if (seen.insert(w).second) r.words.push_back(w);
  }
  return r;
}

absl::StatusOr<TaskSample> MakeRulerSample(const std::string& task, const engine::Tokenizer& tok,
                                           const TaskResources& res, int32_t length,
                                           int32_t max_tokens, uint64_t seed, int32_t index) {
  const int32_t gen = max_tokens > 0 ? max_tokens : RulerMaxTokens(task);
  const int32_t budget = length - gen;
  uint64_t task_hash = 0;
  for (char c : task) task_hash = task_hash * 131 + static_cast<unsigned char>(c);
  Rng rng(CaseSeed(seed, task_hash, static_cast<uint64_t>(length), static_cast<uint64_t>(index)));
  absl::StatusOr<TaskSample> s;
  if (auto it = NiahSpecs().find(task); it != NiahSpecs().end()) {
    s = MakeNiah(task, it->second, tok, res, budget, rng);
  } else if (task == "vt") {
    s = MakeVt(tok, res, budget, rng);
  } else if (task == "cwe") {
    s = MakeCwe(tok, res, budget, rng);
  } else if (task == "fwe") {
    s = MakeFwe(tok, budget, rng);
  } else {
    return absl::InvalidArgumentError(absl::StrFormat("unknown task '%s'; tasks: %s", task,
                                                      absl::StrJoin(RulerTaskNames(), ", ")));
  }
  if (s.ok()) s->max_tokens = gen;
  return s;
}

}  // namespace restkv::eval
