// ServeOptions: the flags of `restkv serve`, shared by the HTTP frontend
// (cli_serve.cc) and the gRPC frontend that will start beside it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cli/device_choice.h"
#include "cli/kv_policy_flags.h"
#include "cli/sparse_prefill_flag.h"

namespace restkv::cli {

struct ServeOptions {
  std::string model;  // "" => the default model
  std::string host = "127.0.0.1";
  int32_t port = 8000;                          // 0 => an ephemeral port
  int32_t grpc_port = 50051;                    // 0 => no gRPC frontend
  std::vector<std::string> served_model_names;  // empty => the model file's stem
  std::string api_key;                          // "" => $RESTKV_API_KEY, else none
  std::string chat_format;                      // "" => detected from the model
  std::string chat_template_file;               // "" => the model file's own template
  std::string tool_call_parser;                 // "" => chosen from the chat template
  std::string kv_cache_memory = "1GiB";
  std::string kv_cache_dtype = "auto";  // --kv-cache-dtype (cli/kv_dtype_flag.h)
  SparsePrefillFlags sparse_prefill;    // --sparse-prefill (cli/sparse_prefill_flag.h)
  KvPolicyFlags kv;                     // the default policy; requests may override it
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;
  bool no_prefix_caching = false;  // --no-prefix-caching
  double max_step_ms = -1;         // -1 => the device's default (engine/step_budget.h), 0 => none
  int32_t max_model_len = 0;       // 0 => the model's context length
  int32_t max_queue = 1024;
  double request_timeout_s = 0;            // 0 => no limit
  std::string scheduling_policy = "fcfs";  // or "priority": requests may set `priority`
  // Generated tokens one request may ask for (all choices); -1 => 16 x
  // max_model_len, 0 => no limit.
  int64_t max_tokens_per_request = -1;
  double shutdown_timeout_s = 20;
  std::string max_body_size = "32MiB";
  int32_t threads = 0;                 // 0 => all cores
  DeviceFlags device;                  // --device, --gpu-memory-utilization, --random-weights
  bool kv_cache_memory_given = false;  // --kv-cache-memory was on the command line
  std::string record_requests;         // "" => off; else a Mooncake-format JSONL file
  int32_t prepare_threads = 2;         // workers that parse and tokenize HTTP requests
  int32_t prepare_queue = 64;          // requests waiting for them before 503
  int32_t max_connections = 0;         // open HTTP connections; 0 => from the file-descriptor limit
  double idle_timeout_s = 75;          // for the next request's headers
  double body_timeout_s = 60;          // for a request body after its headers
  double write_timeout_s = 60;         // for a client to take a response's bytes
};

}  // namespace restkv::cli
