// `restkv generate`: run prompts through the default or a given model and
// stream the text to the terminal, or print one JSON object per prompt.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "cli/chat_template_file.h"
#include "cli/cli.h"
#include "cli/default_model.h"
#include "cli/device_choice.h"
#include "cli/kv_dtype_flag.h"
#include "cli/kv_policy_flags.h"
#include "cli/sparse_prefill_flag.h"
#include "common/byte_size.h"
#include "common/status_macros.h"
#include "common/thread_pool.h"
#include "engine/engine.h"
#include "engine/eviction/policy_config.h"
#include "engine/model/model.h"
#include "kernels/cpu/cpu_backend.h"
#include "nlohmann/json.hpp"

namespace restkv::cli {
namespace {

struct GenerateOptions {
  std::string model;
  std::string prompt;
  std::string prompts_file;
  bool chat = false;
  std::string system;
  std::string chat_format;
  std::string chat_template_file;
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
  bool no_prefix_caching = false;
  int threads = 0;
  std::string kv_cache_memory = "1GiB";
  std::string kv_cache_dtype = "auto";
  SparsePrefillFlags sparse_prefill;
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
      return absl::InvalidArgumentError(
          absl::StrFormat("%s has no prompts (one per line)", opt.prompts_file));
    }
    return prompts;
  }
  if (opt.prompt.empty())
    return absl::InvalidArgumentError("give --prompt TEXT or --prompts-file FILE");
  return std::vector<std::string>{opt.prompt};
}

// The model and the backend it runs on; the backend outlives the model.
struct LoadedModel {
  std::unique_ptr<kernels::Backend> backend;
  std::unique_ptr<engine::Model> model;
};

absl::StatusOr<engine::ModelOptions> GenerateModelOptions(const GenerateOptions& opt) {
  engine::ModelOptions model_options;
  if (!opt.chat_format.empty()) {
    auto f = engine::ParseChatFormatName(opt.chat_format);
    if (!f.ok())
      return absl::InvalidArgumentError("--chat-format: " + std::string(f.status().message()));
    model_options.chat_format = *f;
  }
  model_options.sparse_prefill = ToSparsePrefill(opt.sparse_prefill);
  if (!opt.chat_template_file.empty()) {
    RESTKV_ASSIGN_OR_RETURN(std::string source, ReadChatTemplateFile(opt.chat_template_file));
    model_options.chat_template = std::move(source);
  }
  return model_options;
}

// Creates the backend and loads the model on it, saying so on stderr (but
// for the random-weights warning, not with --json).
absl::StatusOr<LoadedModel> LoadModel(const GenerateOptions& opt, const std::string& path) {
  RESTKV_ASSIGN_OR_RETURN(engine::ModelOptions model_options, GenerateModelOptions(opt));
  const int threads = opt.threads > 0 ? opt.threads : DefaultThreadCount();
  LoadedModel loaded;
  RESTKV_ASSIGN_OR_RETURN(loaded.backend, CreateBackend(opt.device, threads));
  RESTKV_ASSIGN_OR_RETURN(model_options.kv_dtype,
                          ResolveKvDtype(opt.kv_cache_dtype, loaded.backend->name()));
  const auto t_load = std::chrono::steady_clock::now();
  if (!opt.device.random_weights.empty()) {
    // Always said, --json included: these figures come from no real model.
    std::fprintf(stderr, "RANDOM WEIGHTS of shape %s: output text is meaningless\n",
                 opt.device.random_weights.c_str());
  }
  if (!opt.json) {
    std::fprintf(stderr, "loading %s on %s ...", path.c_str(),
                 std::string(loaded.backend->name()).c_str());
  }
  auto model = engine::Model::Load(path, *loaded.backend, model_options);
  if (!model.ok()) {
    if (!opt.json) std::fprintf(stderr, "\n");
    return model.status();
  }
  if (!(*model)->chat_template_warning().empty()) {
    std::fprintf(stderr, "warning: %s\n", (*model)->chat_template_warning().c_str());
  }
  loaded.model = *std::move(model);
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_load).count();
  if (!opt.json) {
    std::fprintf(stderr, " done in %.0f ms (%d threads; KV cache %s)\n", load_ms, threads,
                 std::string(kernels::KvDtypeName(model_options.kv_dtype)).c_str());
  }
  return loaded;
}

absl::StatusOr<std::unique_ptr<engine::Engine>> CreateEngine(const GenerateOptions& opt,
                                                             LoadedModel& loaded, int64_t kv_bytes,
                                                             size_t num_prompts) {
  engine::EngineOptions engine_options;
  RESTKV_ASSIGN_OR_RETURN(
      engine_options.kv_cache_bytes,
      KvCacheBytes(*loaded.backend, opt.device, kv_bytes, opt.kv_cache_memory_given));
  engine_options.max_num_seqs = opt.max_num_seqs;
  engine_options.max_num_batched_tokens = opt.max_num_batched_tokens;
  engine_options.max_queue = std::max<int32_t>(1024, static_cast<int32_t>(num_prompts));
  engine_options.enable_prefix_caching = !opt.no_prefix_caching;
  return engine::Engine::Create(*loaded.model, engine_options);
}

absl::StatusOr<engine::SamplingParams> SamplingParamsFor(const GenerateOptions& opt,
                                                         int32_t vocab_size) {
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
  RESTKV_RETURN_IF_ERROR(params.Validate(vocab_size));
  return params;
}

absl::StatusOr<engine::KvPolicyConfig> KvPolicyFor(const GenerateOptions& opt) {
  // With --kv-ratio the budget is set per prompt, so it is validated there.
  RESTKV_ASSIGN_OR_RETURN(engine::KvPolicyConfig policy,
                          BuildKvPolicy(opt.kv, /*validate=*/opt.kv_ratio == 0.0f));
  if (opt.kv_ratio < 0.0f || opt.kv_ratio > 1.0f) {
    return absl::InvalidArgumentError("--kv-ratio must be in [0, 1]");
  }
  return policy;
}

// What every prompt's request shares.
struct RequestTemplate {
  engine::SamplingParams params;
  engine::KvPolicyConfig policy;
  bool stream = false;  // a single prompt streams to the terminal as it is generated
};

// One prompt's request: its tokens (rendered as a chat turn with --chat), the
// shared parameters, and the budget --kv-ratio gives it.
absl::StatusOr<engine::EngineRequest> PromptRequest(const GenerateOptions& opt,
                                                    engine::Model& model, const std::string& prompt,
                                                    const RequestTemplate& shared) {
  std::string text = prompt;
  if (opt.chat) {
    std::vector<engine::ChatMessage> messages;
    if (!opt.system.empty()) messages.push_back({"system", opt.system});
    messages.push_back({"user", text});
    RESTKV_ASSIGN_OR_RETURN(text, model.RenderChat(messages, /*add_generation_prompt=*/true));
  }
  engine::EngineRequest request;
  // Chat templates spell out their special tokens, so parse them as such.
  request.prompt_tokens = model.tokenizer().Encode(
      text, /*add_special=*/!(opt.chat && model.ChatTextHasBos(text)), /*parse_special=*/opt.chat);
  request.params = shared.params;
  request.kv_policy = shared.policy;
  if (opt.kv_ratio > 0.0f) {
    request.kv_policy.budget = std::max<int32_t>(
        1, static_cast<int32_t>(opt.kv_ratio * static_cast<float>(request.prompt_tokens.size())));
  }
  return request;
}

// Every prompt is submitted at once: the engine batches them continuously.
absl::StatusOr<std::vector<std::shared_ptr<CliSink>>> SubmitPrompts(
    const GenerateOptions& opt, const std::vector<std::string>& prompts, engine::Model& model,
    engine::Engine& engine, const RequestTemplate& shared) {
  std::vector<std::shared_ptr<CliSink>> sinks;
  for (const std::string& prompt : prompts) {
    RESTKV_ASSIGN_OR_RETURN(engine::EngineRequest request,
                            PromptRequest(opt, model, prompt, shared));
    auto sink = std::make_shared<CliSink>(shared.stream);
    sink->prompt_tokens = static_cast<int32_t>(request.prompt_tokens.size());
    request.sink = sink;
    sinks.push_back(sink);
    if (shared.stream && !opt.chat) {
      std::printf("%s", prompt.c_str());
      std::fflush(stdout);
    }
    auto handle = engine.Submit(std::move(request));
    if (!handle.ok()) sink->Reject(handle.status());
  }
  return sinks;
}

void PrintFailure(const GenerateOptions& opt, size_t index, const absl::Status& error) {
  if (opt.json) {
    nlohmann::json err = {{"index", index}, {"error", std::string(error.message())}};
    std::printf("%s\n", err.dump().c_str());
  } else {
    std::fprintf(stderr, "restkv generate: prompt %zu: %s\n", index,
                 std::string(error.message()).c_str());
  }
}

void PrintJson(size_t index, const CliSink::Outcome& out, const engine::EngineStats& stats,
               double decode_ms, double decode_tps) {
  const engine::RequestSummary& r = out.summary;
  nlohmann::json j = {
      {"index", index},
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
}

// The text (unless it was streamed) on stdout, the figures on stderr.
void PrintText(const GenerateOptions& opt, const std::string& prompt, const CliSink::Outcome& out,
               bool streamed, double decode_tps) {
  const engine::RequestSummary& r = out.summary;
  if (!streamed) std::printf("%s%s", opt.chat ? "" : prompt.c_str(), out.text.c_str());
  std::printf("\n");
  std::fprintf(stderr, "[%d prompt tokens, %d generated, finish %s; TTFT %.0f ms, %.1f tokens/s]\n",
               r.prompt_tokens, r.completion_tokens,
               std::string(engine::FinishReasonName(r.reason)).c_str(), r.ttft_ms, decode_tps);
}

// Waits for each prompt in order and prints it; 1 when any failed.
int PrintOutcomes(const GenerateOptions& opt, const std::vector<std::string>& prompts,
                  const std::vector<std::shared_ptr<CliSink>>& sinks, bool streamed,
                  engine::Engine& engine) {
  int exit_code = 0;
  for (size_t i = 0; i < sinks.size(); ++i) {
    const CliSink::Outcome out = sinks[i]->Wait();
    const engine::EngineStats stats = engine.GetStats();
    if (!out.error.ok()) {
      exit_code = 1;
      PrintFailure(opt, i, out.error);
      continue;
    }
    const engine::RequestSummary& r = out.summary;
    const double decode_ms = r.e2e_ms - r.ttft_ms;
    const double decode_tps =
        r.completion_tokens > 1 ? (r.completion_tokens - 1) / (decode_ms / 1000.0) : 0.0;
    if (opt.json) {
      PrintJson(i, out, stats, decode_ms, decode_tps);
    } else {
      PrintText(opt, prompts[i], out, streamed, decode_tps);
    }
  }
  return exit_code;
}

// The steps of `restkv generate`: prompts, model, engine, request
// parameters, submission, output. A failing step ends the command.
absl::StatusOr<int> Generate(const GenerateOptions& opt) {
  RESTKV_ASSIGN_OR_RETURN(const std::vector<std::string> prompts, ReadPrompts(opt));
  RESTKV_ASSIGN_OR_RETURN(
      const std::string path,
      opt.device.random_weights.empty()
          ? ResolveModelPath(opt.model)
          : RandomWeightsModel(opt.device.random_weights, opt.device.random_weights_dir));
  auto kv_bytes = ParseByteSize(opt.kv_cache_memory);
  if (!kv_bytes.ok()) {
    return absl::InvalidArgumentError("--kv-cache-memory: " +
                                      std::string(kv_bytes.status().message()));
  }
  RESTKV_ASSIGN_OR_RETURN(LoadedModel loaded, LoadModel(opt, path));
  RESTKV_ASSIGN_OR_RETURN(const std::unique_ptr<engine::Engine> engine,
                          CreateEngine(opt, loaded, *kv_bytes, prompts.size()));
  RequestTemplate shared;
  RESTKV_ASSIGN_OR_RETURN(shared.params, SamplingParamsFor(opt, loaded.model->config().vocab_size));
  RESTKV_ASSIGN_OR_RETURN(shared.policy, KvPolicyFor(opt));
  shared.stream = !opt.json && prompts.size() == 1;
  RESTKV_ASSIGN_OR_RETURN(const std::vector<std::shared_ptr<CliSink>> sinks,
                          SubmitPrompts(opt, prompts, *loaded.model, *engine, shared));
  const int exit_code = PrintOutcomes(opt, prompts, sinks, shared.stream, *engine);
  engine->Shutdown(0);
  return exit_code;
}

int RunGenerate(const GenerateOptions& opt) {
  auto exit_code = Generate(opt);
  if (!exit_code.ok()) return CommandFailed("generate", std::string(exit_code.status().message()));
  return *exit_code;
}

}  // namespace

void AddGenerateCommand(CLI::App& app, int* exit_code) {
  auto opt = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text for one or more prompts");
  cmd->add_option("--model,-m", opt->model,
                  "GGUF file (default: the model fetched by scripts/fetch-model)");
  cmd->add_option("--prompt,-p", opt->prompt, "Prompt text");
  cmd->add_option("--prompts-file", opt->prompts_file, "File with one prompt per line");
  cmd->add_flag("--chat", opt->chat,
                "Wrap each prompt as a user message in the model's chat template");
  cmd->add_option("--system", opt->system, "System message (with --chat)");
  cmd->add_option(
      "--chat-format", opt->chat_format,
      "Use a built-in chat format instead of the model's template: chatml, llama3, ...");
  cmd->add_option("--chat-template", opt->chat_template_file,
                  "Jinja chat template file to use instead of the model's own (with --chat)");
  cmd->add_option("--max-tokens,-n", opt->max_tokens, "Most tokens to generate")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  cmd->add_option("--temperature,-t", opt->temperature, "Sampling temperature; 0 = greedy")
      ->capture_default_str();
  cmd->add_option("--top-p", opt->top_p, "Nucleus sampling mass")->capture_default_str();
  cmd->add_option("--top-k", opt->top_k, "Keep the k most likely tokens; 0 = off")
      ->capture_default_str();
  cmd->add_option("--min-p", opt->min_p, "Drop tokens below min_p x the top probability")
      ->capture_default_str();
  cmd->add_option("--repetition-penalty", opt->repetition_penalty,
                  "Penalty for tokens seen in prompt or output")
      ->capture_default_str();
  cmd->add_option("--presence-penalty", opt->presence_penalty,
                  "Penalty for tokens present in the output")
      ->capture_default_str();
  cmd->add_option("--frequency-penalty", opt->frequency_penalty,
                  "Penalty per occurrence in the output")
      ->capture_default_str();
  cmd->add_option("--seed", opt->seed, "Random seed (same seed, same output); -1 = random")
      ->capture_default_str();
  cmd->add_option("--stop", opt->stop, "Stop string (repeatable)");
  cmd->add_flag("--ignore-eos", opt->ignore_eos, "Keep generating past end-of-sequence tokens");
  cmd->add_flag("--json", opt->json, "Print one JSON object per prompt instead of streaming text");
  cmd->add_flag("--no-prefix-caching", opt->no_prefix_caching,
                "Turn off automatic prefix caching (prompts that share leading blocks reuse "
                "their KV pages)");
  cmd->add_option("--threads", opt->threads, "CPU threads (default: all available cores)");
  cmd->add_option("--kv-cache-memory", opt->kv_cache_memory,
                  "KV cache pool size, e.g. 512MiB, 2GiB")
      ->capture_default_str();
  AddKvDtypeFlag(cmd, &opt->kv_cache_dtype);
  AddSparsePrefillFlags(cmd, &opt->sparse_prefill);
  AddKvPolicyFlags(cmd, &opt->kv);
  cmd->add_option("--kv-ratio", opt->kv_ratio,
                  "Budget as a fraction of each prompt (overrides --kv-budget)");
  cmd->add_option("--max-num-seqs", opt->max_num_seqs, "Most requests running at once")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", opt->max_num_batched_tokens,
                  "Tokens per engine step (prefill is sliced by layers to fit)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  AddDeviceFlags(cmd, &opt->device);
  cmd->callback([opt, cmd, exit_code] {
    opt->kv_cache_memory_given = cmd->count("--kv-cache-memory") > 0;
    *exit_code = RunGenerate(*opt);
  });
}

}  // namespace restkv::cli
