// `restkv serve`: load a model, start the engine and the OpenAI-compatible
// HTTP server, and run until SIGTERM/SIGINT, then drain and exit 0.
//
// Threads: the engine thread (engine.h); kIoThreads threads running the
// io_context (HTTP sessions, each on its own strand); --prepare-threads
// workers that parse and tokenize HTTP requests (openai_routes.h); a
// shutdown thread started by the first signal.
//
// Shutdown (first SIGTERM/SIGINT): /health turns 503 and new API requests
// get 503 at once; requests in flight run until they finish or
// --shutdown-timeout passes (a second signal cuts the wait short); then the
// engine cancels what is left, the last responses are flushed (bounded), the
// listener closes and the process exits 0.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/signal_set.hpp"
#include "cli/chat_template_file.h"
#include "cli/cli.h"
#include "cli/default_model.h"
#include "cli/kv_dtype_flag.h"
#include "cli/serve_options.h"
#include "cli/sparse_prefill_flag.h"
#include "common/byte_size.h"
#include "common/thread_pool.h"
#include "common/version.h"
#include "engine/engine.h"
#include "engine/eviction/policy_config.h"
#include "engine/kv/block_pool.h"
#include "engine/model/model.h"
#include "engine/step_budget.h"
#include "kernels/cpu/cpu_backend.h"
#include "server/api_error.h"
#include "server/chat_tools.h"
#include "server/grpc_server.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/openai_routes.h"
#include "server/prompt_bound.h"
#include "server/request_log.h"
#include "server/request_recorder.h"

namespace restkv::cli {

// The frontend pieces `restkv serve` wires together.
using server::ApiErrorJson;
using server::DumpJson;
using server::GrpcServer;
using server::HttpExchange;
using server::HttpServer;
using server::HttpServerOptions;
using server::MakeApiError;
using server::MakeHttpResponse;
using server::OpenAiRoutes;
using server::RequestLogger;
using server::RequestRecorder;
using server::RoutesConfig;
using server::ServerMetrics;
namespace {

namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

// HTTP I/O is light next to the forward pass: the heavy part of a request
// (JSON, chat template, tokenizer) runs on the routes' prepare threads, so
// two I/O threads keep /health and /metrics answering under any load.
constexpr int kIoThreads = 2;
// After the engine has stopped, how long the last responses may take to flush.
constexpr auto kFlushTimeout = std::chrono::seconds(2);

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

// Waits until pred() or the deadline; returns pred().
template <typename Pred>
bool WaitUntil(Clock::time_point deadline, Pred pred) {
  while (!pred() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return pred();
}

// --max-connections 0: what the file-descriptor limit leaves. Counted when
// the HTTP server starts (model, engine and logs already hold theirs), minus a
// reserve for what opens later (gRPC's sockets, the recorder's file, accepts
// racing with closes), and at most 4096.
int DefaultMaxConnections() {
  constexpr int kReserve = 16;
  constexpr int kCeiling = 4096;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return kCeiling;
  std::error_code ec;
  int open_fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++open_fds;
  }
  const int64_t room = static_cast<int64_t>(limit.rlim_cur) - open_fds - kReserve;
  return static_cast<int>(std::clamp<int64_t>(room, 4, kCeiling));
}

int RunServe(ServeOptions opt) {
  if (opt.port < 0 || opt.port > 65535)
    return CommandFailed("serve", "--port must be in [0, 65535]");
  if (opt.grpc_port < 0 || opt.grpc_port > 65535)
    return CommandFailed("serve", "--grpc-port must be in [0, 65535]");
  auto kv_policy_or = BuildKvPolicy(opt.kv);
  if (!kv_policy_or.ok())
    return CommandFailed("serve", std::string(kv_policy_or.status().message()));
  const engine::KvPolicyConfig kv_policy = *kv_policy_or;
  if (opt.scheduling_policy != "fcfs" && opt.scheduling_policy != "priority") {
    return CommandFailed("serve", "--scheduling-policy must be fcfs or priority, got '" +
                                      opt.scheduling_policy + "'");
  }
  if (opt.max_tokens_per_request < -1) {
    return CommandFailed("serve", "--max-tokens-per-request must be >= 0 (0 = no limit)");
  }
  if (opt.prepare_threads < 1 || opt.prepare_queue < 1) {
    return CommandFailed("serve", "--prepare-threads and --prepare-queue must be >= 1");
  }
  if (opt.max_connections < 0) return CommandFailed("serve", "--max-connections must be >= 0");
  if (opt.idle_timeout_s <= 0 || opt.body_timeout_s <= 0 || opt.write_timeout_s <= 0) {
    return CommandFailed("serve", "--idle-timeout, --body-timeout and --write-timeout must be > 0");
  }
  if (opt.request_timeout_s < 0 || opt.shutdown_timeout_s < 0) {
    return CommandFailed("serve", "--request-timeout and --shutdown-timeout must be >= 0");
  }
  if (opt.api_key.empty()) {
    if (const char* env = std::getenv("RESTKV_API_KEY"); env != nullptr) opt.api_key = env;
  }
  auto path = opt.device.random_weights.empty()
                  ? ResolveModelPath(opt.model)
                  : RandomWeightsModel(opt.device.random_weights, opt.device.random_weights_dir);
  if (!path.ok()) return CommandFailed("serve", std::string(path.status().message()));
  auto kv_bytes = ParseByteSize(opt.kv_cache_memory);
  if (!kv_bytes.ok())
    return CommandFailed("serve", "--kv-cache-memory: " + std::string(kv_bytes.status().message()));
  auto body_bytes = ParseByteSize(opt.max_body_size);
  if (!body_bytes.ok() || *body_bytes < 1)
    return CommandFailed("serve", "--max-body-size must be a positive size, e.g. 32MiB");

  engine::ModelOptions model_options;
  if (!opt.chat_format.empty()) {
    auto f = engine::ParseChatFormatName(opt.chat_format);
    if (!f.ok())
      return CommandFailed("serve", "--chat-format: " + std::string(f.status().message()));
    model_options.chat_format = *f;
  }
  if (!opt.chat_template_file.empty()) {
    auto source = ReadChatTemplateFile(opt.chat_template_file);
    if (!source.ok()) return CommandFailed("serve", std::string(source.status().message()));
    model_options.chat_template = *source;
  }
  RequestLogger log;
  const int threads = opt.threads > 0 ? opt.threads : DefaultThreadCount();
  auto backend_or = CreateBackend(opt.device, threads);
  if (!backend_or.ok()) return CommandFailed("serve", std::string(backend_or.status().message()));
  kernels::Backend& backend = **backend_or;
  auto kv_dtype = ResolveKvDtype(opt.kv_cache_dtype, backend.name());
  if (!kv_dtype.ok()) return CommandFailed("serve", std::string(kv_dtype.status().message()));
  model_options.kv_dtype = *kv_dtype;
  model_options.sparse_prefill = ToSparsePrefill(opt.sparse_prefill);
  if (!opt.device.random_weights.empty()) {
    log.Info("RANDOM WEIGHTS of shape " + opt.device.random_weights +
             ": output text is meaningless");
  }
  const auto t_load = Clock::now();
  auto model = engine::Model::Load(*path, backend, model_options);
  if (!model.ok()) return CommandFailed("serve", std::string(model.status().message()));
  if (!(*model)->chat_template_warning().empty()) {
    log.Info("WARNING: " + (*model)->chat_template_warning());
  }
  engine::EngineOptions engine_options;
  auto pool_bytes = KvCacheBytes(backend, opt.device, *kv_bytes, opt.kv_cache_memory_given);
  if (!pool_bytes.ok()) return CommandFailed("serve", std::string(pool_bytes.status().message()));
  engine_options.kv_cache_bytes = *pool_bytes;
  engine_options.max_num_seqs = opt.max_num_seqs;
  engine_options.max_num_batched_tokens = opt.max_num_batched_tokens;
  engine_options.max_queue = opt.max_queue;
  engine_options.max_model_len = opt.max_model_len;
  engine_options.enable_prefix_caching = !opt.no_prefix_caching;
  engine_options.max_step_ms =
      opt.max_step_ms >= 0 ? opt.max_step_ms : engine::DefaultMaxStepMs(backend.name());
  if (opt.served_model_names.empty()) {
    opt.served_model_names.push_back(std::filesystem::path(*path).stem().string());
  }
  // Before the engine, whose thread reports every step to it until it stops.
  ServerMetrics metrics(opt.served_model_names.front());
  engine_options.on_step = [&metrics](const engine::StepRecord& r) { metrics.ObserveStep(r); };
  auto engine = engine::Engine::Create(**model, engine_options);
  if (!engine.ok()) return CommandFailed("serve", std::string(engine.status().message()));

  RoutesConfig routes_config;
  routes_config.served_model_names = opt.served_model_names;
  routes_config.api_key = opt.api_key;
  routes_config.request_timeout = Millis(opt.request_timeout_s);
  routes_config.default_kv_policy = kv_policy;
  // NOTE(restkv): 16 full contexts a request by default: n up to 16 without
  // max_tokens still fits, while n=128 with no max_tokens (~1M tokens on an
  // 8k model) is refused at once instead of holding the engine for hours.
  routes_config.limits.priority_scheduling = opt.scheduling_policy == "priority";
  routes_config.limits.max_tokens_per_request = opt.max_tokens_per_request >= 0
                                                    ? opt.max_tokens_per_request
                                                    : 16LL * (*engine)->max_model_len();
  routes_config.limits.max_token_bytes = server::MaxInputBytesPerToken((*model)->tokenizer());
  if (!opt.tool_call_parser.empty()) {
    auto parser = server::ParseToolCallFormatName(opt.tool_call_parser);
    if (!parser.ok())
      return CommandFailed("serve",
                           "--tool-call-parser: " + std::string(parser.status().message()));
  }
  routes_config.limits.tool_call_parser = opt.tool_call_parser;
  routes_config.prepare_threads = opt.prepare_threads;
  routes_config.prepare_queue = opt.prepare_queue;
  std::unique_ptr<RequestRecorder> recorder;
  if (!opt.record_requests.empty()) {
    recorder = std::make_unique<RequestRecorder>(opt.record_requests, &log);
    routes_config.recorder = recorder.get();
  }
  OpenAiRoutes routes(**engine, metrics, log, routes_config);

  net::io_context ioc(kIoThreads);
  HttpServerOptions http_options;
  http_options.host = opt.host;
  http_options.port = static_cast<uint16_t>(opt.port);
  http_options.max_body_bytes = static_cast<uint64_t>(*body_bytes);
  http_options.idle_timeout = Millis(opt.idle_timeout_s);
  http_options.body_timeout = Millis(opt.body_timeout_s);
  http_options.write_timeout = Millis(opt.write_timeout_s);
  http_options.max_connections =
      opt.max_connections > 0 ? opt.max_connections : DefaultMaxConnections();
  http_options.error_response = [](int status, std::string message) {
    return MakeHttpResponse(status,
                            DumpJson(ApiErrorJson(MakeApiError(status, std::move(message)))));
  };
  auto server = HttpServer::Listen(ioc, http_options, [&routes](std::shared_ptr<HttpExchange> e) {
    routes.Handle(std::move(e));
  });
  if (!server.ok()) {
    (*engine)->Shutdown(0);
    return CommandFailed("serve", std::string(server.status().message()));
  }

  // NOTE(restkv): the gRPC frontend (proto/restkv/v1) starts here on opt.grpc_port with the same
  // Engine, ServerMetrics and ApiKeyAuth, and is stopped in the shutdown sequence below, before the
  // engine.
  std::unique_ptr<GrpcServer> grpc;
  if (opt.grpc_port != 0) {
    auto g = GrpcServer::Start(opt.host, opt.grpc_port, **engine,
                               {opt.served_model_names, opt.api_key, kv_policy, &metrics, &log,
                                recorder.get(), routes_config.limits});
    if (!g.ok()) {
      (*engine)->Shutdown(0);
      return CommandFailed("serve", std::string(g.status().message()));
    }
    grpc = std::move(*g);
  }

  const engine::ModelConfig& c = (*model)->config();
  const engine::KvPageShape shape{c.num_kv_heads, c.head_dim, (*model)->forward().block_size(),
                                  (*model)->forward().kv_dtype()};
  const engine::EngineStats stats = (*engine)->GetStats();
  const std::string base = absl::StrFormat("http://%s:%d", opt.host, (*server)->port());
  log.Info(absl::StrFormat(
      "restkv %s: model %s (%s, %d layers, vocab %d, context %d) loaded in %.1f s from %s",
      kRestkvVersion, opt.served_model_names.front(), c.architecture, c.num_layers, c.vocab_size,
      c.context_length, std::chrono::duration<double>(Clock::now() - t_load).count(), *path));
  log.Info(absl::StrFormat(
      "KV cache: %s %s in %d pages of %d tokens (%s per token, room for %d tokens); kv policy %s; "
      "max_model_len %d, max_num_seqs %d, max_num_batched_tokens %d, max_step_ms %g, max_queue %d; "
      "%d CPU threads; device %s",
      FormatByteSize(*pool_bytes), std::string(kernels::KvDtypeName(shape.dtype)),
      stats.kv_pages_total, shape.block_size,
      FormatByteSize(shape.page_bytes() * c.num_layers / shape.block_size),
      static_cast<int64_t>(stats.kv_pages_total) * shape.block_size / c.num_layers,
      engine::KvPolicyDebugString(kv_policy), (*engine)->max_model_len(), opt.max_num_seqs,
      opt.max_num_batched_tokens, engine_options.max_step_ms, opt.max_queue, threads,
      std::string(backend.name())));
  // vLLM refuses to start when the KV cache cannot hold one max_model_len
  // request; restkv serves on (an evicting policy, or shorter requests, may
  // fit) but says so, and requests without max_tokens get a default that fits.
  const int32_t longest = (*engine)->MaxTokensThatFit(1, kv_policy) + 1;
  if (longest < (*engine)->max_model_len()) {
    log.Info(absl::StrFormat(
        "WARNING: the KV cache cannot hold one request of max_model_len %d tokens with kv policy "
        "%s: the longest that fits is %d tokens. Longer requests are refused (400); requests "
        "without max_tokens get the largest max_tokens that fits. Raise --kv-cache-memory or "
        "lower --max-model-len to serve full contexts.",
        (*engine)->max_model_len(), engine::KvPolicyDebugString(kv_policy), longest));
  }
  log.Info(absl::StrFormat(
      "HTTP requests are parsed and tokenized on %d threads (%d may wait, then 503); prompts over "
      "%d bytes are refused untokenized",
      opt.prepare_threads, opt.prepare_queue,
      static_cast<int64_t>((*engine)->max_model_len()) * routes_config.limits.max_token_bytes));
  log.Info(absl::StrFormat(
      "HTTP: at most %d connections; timeouts idle %.0f s, body %.0f s, "
      "write %.0f s",
      http_options.max_connections, opt.idle_timeout_s, opt.body_timeout_s, opt.write_timeout_s));
  log.Info(absl::StrFormat("HTTP: OpenAI API at %s/v1 (health %s/health, metrics %s/metrics)%s",
                           base, base, base, opt.api_key.empty() ? "" : "; API key required"));
  log.Info(opt.grpc_port == 0
               ? std::string("gRPC: disabled (--grpc-port 0)")
               : absl::StrFormat("gRPC: restkv.v1.Generation and grpc.health.v1.Health at %s:%d",
                                 opt.host, grpc->port()));
  log.Info("ready; SIGTERM or Ctrl-C drains and stops");

  net::signal_set signals(ioc, SIGINT, SIGTERM);
  std::atomic<bool> force{false};
  std::thread shutdown_thread;
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    log.Info(absl::StrFormat(
        "%s: draining for up to %.0f s (%d requests in flight; signal again to stop now)",
        signo == SIGTERM ? "SIGTERM" : "SIGINT", opt.shutdown_timeout_s, routes.active_calls()));
    routes.StartDraining();
    if (grpc) grpc->StartDraining();
    signals.async_wait([&](const boost::system::error_code& ec2, int) {
      if (!ec2) force = true;
    });
    shutdown_thread = std::thread([&] {
      const auto deadline = Clock::now() + Millis(opt.shutdown_timeout_s);
      const bool drained = WaitUntil(deadline, [&] {
        return force.load() || (routes.active_calls() == 0 && (!grpc || grpc->active_calls() == 0));
      });
      if (!drained || routes.active_calls() > 0) {
        log.Info(absl::StrFormat("cancelling %d requests still running", routes.active_calls()));
      }
      if (grpc) grpc->Shutdown(std::chrono::system_clock::now());  // cancels gRPC calls left
      (*engine)->Shutdown(0);  // cancels what is left; every sink sees OnFinish
      const auto flush_deadline = Clock::now() + kFlushTimeout;
      WaitUntil(flush_deadline,
                [&] { return routes.active_calls() == 0 && (*server)->active_exchanges() == 0; });
      (*server)->StopAccepting();
      net::post(ioc, [&] {
        boost::system::error_code ignored;
        signals.cancel(ignored);
        ioc.stop();
      });
    });
  });

  std::vector<std::thread> io_threads;
  // A handler that throws (only third-party code can) must not take the
  // server down: log it and keep running the loop.
  auto run_io = [&ioc, &log] {
    while (true) {
      try {
        ioc.run();
        return;
      } catch (const std::exception& e) {
        log.Info(std::string("internal error in an I/O handler: ") + e.what());
      }
    }
  };
  for (int i = 1; i < kIoThreads; ++i) io_threads.emplace_back(run_io);
  run_io();
  for (std::thread& t : io_threads) t.join();
  routes.StopPreparing();  // before ioc is destroyed: its tasks post to it
  if (shutdown_thread.joinable()) shutdown_thread.join();
  (*engine)->Shutdown(0);  // no-op after a drain; stops the engine if ioc stopped otherwise
  log.Info("stopped");
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app, int* exit_code) {
  auto opt = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  cmd->add_option("--model,-m", opt->model,
                  "GGUF file (default: the model fetched by scripts/fetch-model)");
  cmd->add_option("--host", opt->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", opt->port, "HTTP port (0: any free port)")->capture_default_str();
  cmd->add_option("--grpc-port", opt->grpc_port, "gRPC port (0: no gRPC)")->capture_default_str();
  cmd->add_option("--served-model-name", opt->served_model_names,
                  "Model name(s) clients use (default: the file name without .gguf)");
  cmd->add_option("--api-key", opt->api_key,
                  "Require 'Authorization: Bearer KEY' (default: $RESTKV_API_KEY)");
  cmd->add_option(
      "--chat-format", opt->chat_format,
      "Use a built-in chat format instead of the model's template: chatml, llama3, ...");
  cmd->add_option("--chat-template", opt->chat_template_file,
                  "Jinja chat template file to use instead of the model's own");
  cmd->add_option(
      "--tool-call-parser", opt->tool_call_parser,
      "Tool-call output format: hermes, llama3_json, mistral (default: from the template)");
  cmd->add_option("--kv-cache-memory", opt->kv_cache_memory,
                  "KV cache pool size, e.g. 512MiB, 2GiB")
      ->capture_default_str();
  AddKvDtypeFlag(cmd, &opt->kv_cache_dtype);
  AddSparsePrefillFlags(cmd, &opt->sparse_prefill);
  // Requests may override these with kv_policy, kv_budget and kv_options.
  AddKvPolicyFlags(cmd, &opt->kv, "Default");
  cmd->add_option("--max-num-seqs", opt->max_num_seqs, "Most requests running at once")
      ->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", opt->max_num_batched_tokens,
                  "Most tokens in one engine step")
      ->capture_default_str();
  cmd->add_option("--max-step-ms", opt->max_step_ms,
                  "Planned time of an engine step that carries decodes, i.e. the inter-token "
                  "time while prompts prefill (-1: the device's default, 150 on cpu, 100 on "
                  "cuda; 0: no time budget, only --max-num-batched-tokens)")
      ->check(CLI::Range(-1.0, 1e6))
      ->capture_default_str();
  cmd->add_option("--max-model-len", opt->max_model_len, "Context length limit (0: the model's)")
      ->capture_default_str();
  cmd->add_flag("--no-prefix-caching", opt->no_prefix_caching,
                "Turn off automatic prefix caching (reuse of the KV pages of prompt blocks "
                "that earlier requests computed; requests with an evicting kv_policy never "
                "use it)");
  cmd->add_option("--max-queue", opt->max_queue,
                  "Most requests in the engine (running + waiting) before new ones get 429")
      ->capture_default_str();
  cmd->add_option("--scheduling-policy", opt->scheduling_policy,
                  "fcfs (first come, first served) or priority (requests' `priority` field "
                  "orders the queue and preemption; lower runs first)")
      ->capture_default_str();
  cmd->add_option("--max-tokens-per-request", opt->max_tokens_per_request,
                  "Most tokens one request may ask to generate, over all its choices (n x "
                  "max_tokens); default 16 x max-model-len, 0 = no limit");
  cmd->add_option("--request-timeout", opt->request_timeout_s,
                  "Seconds a request may run before it is cancelled (0: no limit)")
      ->capture_default_str();
  cmd->add_option("--shutdown-timeout", opt->shutdown_timeout_s,
                  "Seconds to let requests finish after SIGTERM")
      ->capture_default_str();
  cmd->add_option("--max-body-size", opt->max_body_size,
                  "Largest request body; larger ones get 413")
      ->capture_default_str();
  cmd->add_option("--threads", opt->threads,
                  "CPU threads for the model (default: all available cores)");
  cmd->add_option("--record-requests", opt->record_requests,
                  "Write one JSON line per finished HTTP request (Mooncake trace format: "
                  "arrival, lengths, prefix-block hashes; never the prompt) for restkv bench "
                  "--replay");
  cmd->add_option("--max-connections", opt->max_connections,
                  "Most open HTTP connections; at the cap the longest-idle keep-alive connection "
                  "is closed for a new one (0: the file-descriptor limit less those in use and 16 "
                  "spare, at most 4096)")
      ->capture_default_str();
  cmd->add_option("--idle-timeout", opt->idle_timeout_s,
                  "Seconds a connection may take to send the next request's headers")
      ->capture_default_str();
  cmd->add_option("--body-timeout", opt->body_timeout_s,
                  "Seconds a client may take to send a request body after its headers")
      ->capture_default_str();
  cmd->add_option("--write-timeout", opt->write_timeout_s,
                  "Seconds a client may take to read the next bytes of a response")
      ->capture_default_str();
  cmd->add_option("--prepare-threads", opt->prepare_threads,
                  "Threads that parse, template and tokenize HTTP requests (off the I/O threads)")
      ->capture_default_str();
  cmd->add_option("--prepare-queue", opt->prepare_queue,
                  "HTTP requests that may wait for a prepare thread; more get 503")
      ->capture_default_str();
  AddDeviceFlags(cmd, &opt->device);
  cmd->callback([opt, cmd, exit_code] {
    opt->kv_cache_memory_given = cmd->count("--kv-cache-memory") > 0;
    *exit_code = RunServe(*opt);
  });
}

}  // namespace restkv::cli
