// `restkv generate`: run prompts through the default or a given model and
// stream the text to the terminal, or print one JSON object per prompt.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/byte_size.h"
#include "common/thread_pool.h"
#include "engine/engine.h"
#include "engine/eviction/policy_config.h"
#include "engine/model/model.h"
#include "kernels/cpu/cpu_backend.h"
#include "cli/device_choice.h"
#include "nlohmann/json.hpp"
#include "cli/cli.h"
#include "cli/kv_policy_flags.h"
#include "cli/default_model.h"

namespace restkv::cli {
namespace {

struct GenerateOptions {
  std::string model;
  std::string prompt;
  std::string prompts_file;
  bool chat = false;
  std::string system;
  std::string chat_format;
  int32_t max_tokens = 128;
  float temperature = 0.8f;
  float top_p = 0.95f;
  int32_t top_k = 40;
  float min_p = 0.05f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int64_t seed = -1;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  bool json = false;
  int threads = 0;
  std::string kv_cache_memory = "1GiB";
  KvPolicyFlags kv;
  float kv_ratio = 0.0f;
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;
  DeviceFlags device;
  bool kv_cache_memory_given = false;
};

// Collects one prompt's output; streams it to stdout when asked. Called on
// the engine thread; Wait() blocks the CLI thread until the request ends.
class CliSink final : public engine::RequestSink {
 public:
  struct Outcome {
    std::string text;
    engine::RequestSummary summary;
    absl::Status error;
  };
  explicit CliSink(bool stream) : stream_(stream) {}

  void OnTokens(const engine::TokenDelta& delta) override {
    if (stream_ && !delta.text.empty()) {
      std::fwrite(delta.text.data(), 1, delta.text.size(), stdout);
      std::fflush(stdout);
    }
    std::lock_guard<std::mutex> lock(mu_);
    outcome_.text += delta.text;
  }
  void OnFinish(const engine::RequestSummary& summary) override {
    std::lock_guard<std::mutex> lock(mu_);
    outcome_.summary = summary;
    if (summary.reason == engine::FinishReason::kError) outcome_.error = summary.error;
    done_ = true;
    cv_.notify_all();
  }
  void Reject(const absl::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    outcome_.error = status;
    done_ = true;
    cv_.notify_all();
  }
  Outcome Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
    return outcome_;
  }

  int32_t prompt_tokens = 0;

 private:
  const bool stream_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  Outcome outcome_;
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "restkv generate: %s\n", message.c_str());
  return 1;
}

absl::StatusOr<std::vector<std::string>> ReadPrompts(const GenerateOptions& opt) {
  if (!opt.prompt.empty() && !opt.prompts_file.empty()) {
    return absl::InvalidArgumentError("give either --prompt or --prompts-file, not both");
  }
  if (!opt.prompts_file.empty()) {
    std::ifstream in(opt.prompts_file);
    if (!in) return absl::NotFoundError(absl::StrFormat("cannot read %s", opt.prompts_file));
    std::vector<std::string> prompts;
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) prompts.push_back(line);
    }
    if (prompts.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat("%s has no prompts (one per line)", opt.prompts_file));
    }
    return prompts;
  }
  if (opt.prompt.empty()) return absl::InvalidArgumentError("give --prompt TEXT or --prompts-file FILE");
  return std::vector<std::string>{opt.prompt};
}

int RunGenerate(const GenerateOptions& opt) {
  auto prompts = ReadPrompts(opt);
  if (!prompts.ok()) return Fail(std::string(prompts.status().message()));
  auto path = opt.device.random_weights.empty()
                  ? ResolveModelPath(opt.model)
                  : RandomWeightsModel(opt.device.random_weights, opt.device.random_weights_dir);
  if (!path.ok()) return Fail(std::string(path.status().message()));
  auto kv_bytes = ParseByteSize(opt.kv_cache_memory);
  if (!kv_bytes.ok()) return Fail("--kv-cache-memory: " + std::string(kv_bytes.status().message()));

  engine::ModelOptions model_options;
  if (!opt.chat_format.empty()) {
    auto f = engine::ParseChatFormatName(opt.chat_format);
    if (!f.ok()) return Fail("--chat-format: " + std::string(f.status().message()));
    model_options.chat_format = *f;
  }
  const int threads = opt.threads > 0 ? opt.threads : DefaultThreadCount();
  auto backend_or = CreateBackend(opt.device, threads);
  if (!backend_or.ok()) return Fail(std::string(backend_or.status().message()));
  kernels::Backend& backend = **backend_or;
  const auto t_load = std::chrono::steady_clock::now();
  if (!opt.device.random_weights.empty()) {
    // Always said, --json included: these figures come from no real model.
    std::fprintf(stderr, "RANDOM WEIGHTS of shape %s: output text is meaningless\n",
                 opt.device.random_weights.c_str());
  }
  if (!opt.json) {
    std::fprintf(stderr, "loading %s on %s ...", path->c_str(), std::string(backend.name()).c_str());
  }
  auto model = engine::Model::Load(*path, backend, model_options);
  if (!model.ok()) {
    if (!opt.json) std::fprintf(stderr, "\n");
    return Fail(std::string(model.status().message()));
  }
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_load).count();
  if (!opt.json) std::fprintf(stderr, " done in %.0f ms (%d threads)\n", load_ms, threads);

  const engine::ModelConfig& c = (*model)->config();
  engine::EngineOptions engine_options;
  auto pool_bytes = KvCacheBytes(backend, opt.device, *kv_bytes, opt.kv_cache_memory_given);
  if (!pool_bytes.ok()) return Fail(std::string(pool_bytes.status().message()));
  engine_options.kv_cache_bytes = *pool_bytes;
  engine_options.max_num_seqs = opt.max_num_seqs;
  engine_options.max_num_batched_tokens = opt.max_num_batched_tokens;
  engine_options.max_queue = std::max<int32_t>(1024, static_cast<int32_t>(prompts->size()));
  auto engine = engine::Engine::Create(**model, engine_options);
  if (!engine.ok()) return Fail(std::string(engine.status().message()));

  engine::SamplingParams params;
  params.max_tokens = opt.max_tokens;
  params.temperature = opt.temperature;
  params.top_p = opt.top_p;
  params.top_k = opt.top_k;
  params.min_p = opt.min_p;
  params.repetition_penalty = opt.repetition_penalty;
  params.presence_penalty = opt.presence_penalty;
  params.frequency_penalty = opt.frequency_penalty;
  if (opt.seed >= 0) params.seed = static_cast<uint64_t>(opt.seed);
  params.stop = opt.stop;
  params.ignore_eos = opt.ignore_eos;
  if (absl::Status s = params.Validate(c.vocab_size); !s.ok()) return Fail(std::string(s.message()));

  // With --kv-ratio the budget is set per prompt, so it is validated there.
  auto policy_or = BuildKvPolicy(opt.kv, /*validate=*/opt.kv_ratio == 0.0f);
  if (!policy_or.ok()) return Fail(std::string(policy_or.status().message()));
  const engine::KvPolicyConfig policy = *policy_or;
  if (opt.kv_ratio < 0.0f || opt.kv_ratio > 1.0f) return Fail("--kv-ratio must be in [0, 1]");

  // Every prompt is submitted at once: the engine batches them continuously.
  // A single prompt streams to the terminal as it is generated.
  const bool stream = !opt.json && prompts->size() == 1;
  std::vector<std::shared_ptr<CliSink>> sinks;
  for (size_t i = 0; i < prompts->size(); ++i) {
    std::string text = (*prompts)[i];
    if (opt.chat) {
      std::vector<engine::ChatMessage> messages;
      if (!opt.system.empty()) messages.push_back({"system", opt.system});
      messages.push_back({"user", text});
      auto rendered = (*model)->RenderChat(messages, /*add_generation_prompt=*/true);
      if (!rendered.ok()) return Fail(std::string(rendered.status().message()));
      text = *rendered;
    }
    engine::EngineRequest request;
    // Chat templates spell out their special tokens, so parse them as such.
    request.prompt_tokens = (*model)->tokenizer().Encode(text, /*add_special=*/true,
                                                         /*parse_special=*/opt.chat);
    request.params = params;
    request.kv_policy = policy;
    if (opt.kv_ratio > 0.0f) {
      request.kv_policy.budget = std::max<int32_t>(
          1, static_cast<int32_t>(opt.kv_ratio * static_cast<float>(request.prompt_tokens.size())));
    }
    auto sink = std::make_shared<CliSink>(stream);
    sink->prompt_tokens = static_cast<int32_t>(request.prompt_tokens.size());
    request.sink = sink;
    sinks.push_back(sink);
    if (stream && !opt.chat) {
      std::printf("%s", (*prompts)[i].c_str());
      std::fflush(stdout);
    }
    auto handle = (*engine)->Submit(std::move(request));
    if (!handle.ok()) sink->Reject(handle.status());
  }
  int exit_code = 0;
  for (size_t i = 0; i < sinks.size(); ++i) {
    const CliSink::Outcome out = sinks[i]->Wait();
    const engine::EngineStats stats = (*engine)->GetStats();
    if (!out.error.ok()) {
      exit_code = 1;
      if (opt.json) {
        nlohmann::json err = {{"index", i}, {"error", std::string(out.error.message())}};
        std::printf("%s\n", err.dump().c_str());
      } else {
        std::fprintf(stderr, "restkv generate: prompt %zu: %s\n", i, std::string(out.error.message()).c_str());
      }
      continue;
    }
    const engine::RequestSummary& r = out.summary;
    const double decode_ms = r.e2e_ms - r.ttft_ms;
    const double decode_tps = r.completion_tokens > 1 ? (r.completion_tokens - 1) / (decode_ms / 1000.0) : 0.0;
    if (opt.json) {
      nlohmann::json j = {
          {"index", i},
          {"text", out.text},
          {"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"finish_reason", std::string(engine::FinishReasonName(r.reason))},
          {"ttft_ms", r.ttft_ms},
          {"queue_ms", r.queue_ms},
          {"decode_ms", decode_ms},
          {"total_ms", r.e2e_ms},
          {"decode_tokens_per_s", decode_tps},
          {"preemptions", r.num_preemptions},
          {"kv_tokens_kept", r.kv_tokens_kept},
          {"kv_tokens_evicted", r.kv_tokens_evicted},
          {"kv_pages_peak", stats.kv_pages_high_water},
      };
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      std::fflush(stdout);
    } else {
      if (!stream) std::printf("%s%s", opt.chat ? "" : (*prompts)[i].c_str(), out.text.c_str());
      std::printf("\n");
      std::fprintf(stderr, "[%d prompt tokens, %d generated, finish %s; TTFT %.0f ms, %.1f tokens/s]\n",
                   r.prompt_tokens, r.completion_tokens,
                   std::string(engine::FinishReasonName(r.reason)).c_str(), r.ttft_ms, decode_tps);
    }
  }
  (*engine)->Shutdown(0);
  return exit_code;
}

}  // namespace

void AddGenerateCommand(CLI::App& app, int* exit_code) {
  auto opt = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text for one or more prompts");
  cmd->add_option("--model,-m", opt->model, "GGUF file (default: the model fetched by scripts/fetch-model)");
  cmd->add_option("--prompt,-p", opt->prompt, "Prompt text");
  cmd->add_option("--prompts-file", opt->prompts_file, "File with one prompt per line");
  cmd->add_flag("--chat", opt->chat, "Wrap each prompt as a user message in the model's chat template");
  cmd->add_option("--system", opt->system, "System message (with --chat)");
  cmd->add_option("--chat-format", opt->chat_format, "Override the chat format: chatml, llama3, llama2, ...");
  cmd->add_option("--max-tokens,-n", opt->max_tokens, "Most tokens to generate")->check(CLI::Range(1, 1 << 24))->capture_default_str();
  cmd->add_option("--temperature,-t", opt->temperature, "Sampling temperature; 0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", opt->top_p, "Nucleus sampling mass")->capture_default_str();
  cmd->add_option("--top-k", opt->top_k, "Keep the k most likely tokens; 0 = off")->capture_default_str();
  cmd->add_option("--min-p", opt->min_p, "Drop tokens below min_p x the top probability")->capture_default_str();
  cmd->add_option("--repetition-penalty", opt->repetition_penalty, "Penalty for tokens seen in prompt or output")->capture_default_str();
  cmd->add_option("--presence-penalty", opt->presence_penalty, "Penalty for tokens present in the output")->capture_default_str();
  cmd->add_option("--frequency-penalty", opt->frequency_penalty, "Penalty per occurrence in the output")->capture_default_str();
  cmd->add_option("--seed", opt->seed, "Random seed (same seed, same output); -1 = random")->capture_default_str();
  cmd->add_option("--stop", opt->stop, "Stop string (repeatable)");
  cmd->add_flag("--ignore-eos", opt->ignore_eos, "Keep generating past end-of-sequence tokens");
  cmd->add_flag("--json", opt->json, "Print one JSON object per prompt instead of streaming text");
  cmd->add_option("--threads", opt->threads, "CPU threads (default: all available cores)");
  cmd->add_option("--kv-cache-memory", opt->kv_cache_memory, "KV cache pool size, e.g. 512MiB, 2GiB")->capture_default_str();
  AddKvPolicyFlags(cmd, &opt->kv);
  cmd->add_option("--kv-ratio", opt->kv_ratio, "Budget as a fraction of each prompt (overrides --kv-budget)");
  cmd->add_option("--max-num-seqs", opt->max_num_seqs, "Most requests running at once")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", opt->max_num_batched_tokens, "Tokens per engine step (prefill is sliced by layers to fit)")->check(CLI::PositiveNumber)->capture_default_str();
  AddDeviceFlags(cmd, &opt->device);
  cmd->callback([opt, cmd, exit_code] {
    opt->kv_cache_memory_given = cmd->count("--kv-cache-memory") > 0;
    *exit_code = RunGenerate(*opt);
  });
}

}  // namespace restkv::cli
